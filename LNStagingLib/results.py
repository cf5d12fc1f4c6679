"""The one Results object of a run, and its file form.

The pipeline fills it; the CLI, the HTML report, the Slicer scene adapter, the web review and the DICOM
exporters only render it. Nothing downstream recomputes what the pipeline produced.

Files in a results folder (the public interface of ``lnstaging run``):
  attention.nii.gz, ln_probability.nii.gz, gtv_ln.nii.gz (instance labels: value = candidate id),
  candidates.csv, candidates.json, patient.json, provenance.json, review.json (review decisions, if any),
  other_findings.csv (when PET candidates ran: what is not in the node list, with its reason; also the
  ``other_findings`` key of candidates.json).
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import SimpleITK as sitk

from . import NOT_FOR_CLINICAL_USE
from .errors import InputFileError

REVIEW_STATES = ("pending", "accepted", "rejected")
MODEL_STAGES = ("seg", "cls", "identification", "patient")
# The candidate scores that are a metastasis probability, and the model stage that owns each (stage-1 scores say
# "lymph node tissue", not "metastatic": they rank nothing a clinician could read as a probability).
PROBABILITY_SCORES = {"stage2": "cls", "identification": "identification"}


def json_number(value):
    """A float for JSON: NaN and infinities (a value that was not computed) become null, never a number."""
    if isinstance(value, float) and value != value or value in (float("inf"), float("-inf")):
        return None
    return value


def _json_safe(data):
    if isinstance(data, dict):
        return {k: _json_safe(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_json_safe(v) for v in data]
    return json_number(data) if isinstance(data, float) else data


@dataclass
class Candidate:
    """One lymph node candidate. ``id`` is its value in the GTV_LN instance label map (0 = none)."""

    id: int
    centroid_lps: tuple[float, float, float]
    volume_ml: float = 0.0
    short_axis_mm: float = 0.0
    suv_max: float = float("nan")
    suv_peak: float = float("nan")  # mean SUV in a 1 ml sphere at the hottest voxel (NaN without a PET)
    priors: dict[str, float] = field(default_factory=dict)
    probability: Optional[float] = None  # the GTV_LN probability shown to the user (stage 2 when it ran)
    scores: dict[str, float] = field(default_factory=dict)  # every model's score, e.g. stage1, identification, stage2
    rank: int = 0
    source: str = "stage1"  # stage1 | pet | file | user, or several joined by "+" when merged by overlap
    review: str = "pending"  # pending | accepted | rejected
    note: str = ""

    def __post_init__(self) -> None:
        self.centroid_lps = tuple(float(c) for c in self.centroid_lps)
        if self.review not in REVIEW_STATES:
            raise ValueError(f"review state must be one of {REVIEW_STATES}, not {self.review!r}")

    @property
    def name(self) -> str:
        """The RT planning name of this node (AAPM TG-263 style)."""
        return f"GTVn_{self.id:02d}"


@dataclass
class PatientResult:
    metastasis_probability: Optional[float] = None
    operating_point: dict = field(default_factory=dict)  # e.g. {"threshold": 0.5, "fp_per_patient": 3}
    largest_positive_ln_volume_ml: Optional[float] = None
    note: str = ""


@dataclass
class Results:
    """Everything a run produced for one case. Images are SimpleITK images in LPS on the CT grid (a PET-only run:
    on the PET's own grid)."""

    gtv_ln: Optional[sitk.Image] = None
    attention: Optional[sitk.Image] = None
    ln_probability: Optional[sitk.Image] = None
    candidates: list[Candidate] = field(default_factory=list)
    patient: PatientResult = field(default_factory=PatientResult)
    provenance: dict = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # what did not run, and why, in the user's words
    ranking: str = "probability"  # "probability" (a model's) or "suv_peak" (no applicable classifier)
    probability_domain: str = ""  # "synthetic phantom" when the probabilities come from phantom-trained models
    other_findings: Optional[list[dict]] = None  # PET lesions not in the node list (reason, how); None: no PET rules ran
    # Every model the run was given, by stage: {"id", "sha256", "training_domain", "applied": bool, "reason": why
    # not}. The one record of what ran: provenance.json's models_applied / models_not_applied and every face.
    models: dict = field(default_factory=dict)
    probability_score: str = ""  # the score shown as c.probability: "stage2" or "identification" ("" = none)
    notes: list[str] = field(default_factory=list)  # steps that ran, said in one line (PET candidates, ...)

    IMAGE_FILES = {"gtv_ln": "gtv_ln.nii.gz", "attention": "attention.nii.gz", "ln_probability": "ln_probability.nii.gz"}

    def candidate(self, candidate_id: int) -> Candidate:
        for c in self.candidates:
            if c.id == candidate_id:
                return c
        raise KeyError(candidate_id)

    @property
    def ranks_by_probability(self) -> bool:
        """True when a classifier's metastasis probability ranks the list (then a p column and an FROC exist)."""
        return self.ranking != "suv_peak"

    @property
    def ranking_basis(self) -> dict:
        """What ranks the candidates and sets the operating point: a named model's probability, or SUVpeak."""
        if not self.ranks_by_probability:
            return {"kind": "suv_peak", "label": "SUVpeak", "model": None, "stage": None}
        stage = PROBABILITY_SCORES.get(self.probability_score, "")
        model = (self.models.get(stage) or {}).get("id") if stage else None
        return {"kind": "probability", "label": "p(metastasis)", "model": model, "stage": stage or None}

    def ranking_value(self, c: "Candidate") -> Optional[float]:
        """The value the operating point compares: the probability, or the SUVpeak; None when not computed."""
        value = c.probability if self.ranks_by_probability else c.suv_peak
        return None if value is None or value != value else float(value)

    def applied_models(self) -> dict:
        return {stage: info for stage, info in self.models.items() if info.get("applied")}

    def not_applied_models(self) -> dict:
        return {stage: info for stage, info in self.models.items() if not info.get("applied")}

    def models_text(self) -> list[str]:
        """One line per model given to the run: applied (id, sha256 prefix, training domain) or not and why."""
        lines = []
        for stage, info in self.models.items():
            name = f"{info.get('id', '?')} ({stage})"
            if info.get("applied"):
                domain = info.get("training_domain")
                lines.append(f"{name} applied (sha256 {str(info.get('sha256', ''))[:12]}"
                             f"{', trained on ' + domain + ' data' if domain else ''})")
            else:
                lines.append(f"{name} not applied: {info.get('reason') or 'no reason recorded'}")
        return lines

    def what_ran(self) -> list[str]:
        """Per model applied or not (and why), each step that ran, each that was skipped: the lines every face
        prints (the CLI summary, the Slicer module's status)."""
        return ([f"Model {line}" for line in self.models_text()] + [f"Ran: {line}" for line in self.notes]
                + [f"Skipped: {line}" for line in self.skipped])

    @property
    def ranking_text(self) -> str:
        """What the rank means, in the user's words (every face shows it)."""
        if not self.ranks_by_probability:
            return "ranked by SUVpeak (PET uptake), not by a learned probability"
        model = self.ranking_basis["model"]
        named = f" of {model}" if model else ""
        if self.probability_domain == "synthetic phantom":
            return (f"ranked by the probability{named}, a model trained on synthetic phantoms only (not validated "
                    "on patients)")
        return f"ranked by the probability{named}"

    def operating_point_text(self, threshold: Optional[float] = None) -> str:
        """The operating point in the basis's own unit, with the expected FP/patient only when the classifier that
        owns the FROC ran."""
        point = self.patient.operating_point or {}
        threshold = point.get("threshold") if threshold is None else threshold
        if threshold is None:
            return "none"
        if not self.ranks_by_probability:
            return f"SUVpeak ≥ {float(threshold):.1f}"
        text = f"p ≥ {float(threshold):.2f}"
        fp = point.get("fp_per_patient", point.get("expected_fp_per_patient"))
        if fp is not None and "cls" in self.applied_models():
            text += f" ({float(fp):.2f} expected false positives per patient, validation FROC of " \
                    f"{self.models['cls'].get('id')})"
        return text

    def rank_candidates(self) -> None:
        """Rank 1 = most probable (or highest SUVpeak when ranking by SUV); candidates without a value come last, in
        id order."""
        order = sorted(self.candidates, key=lambda c: (self.ranking_value(c) is None, -(self.ranking_value(c) or 0.0),
                                                       c.id))
        for rank, c in enumerate(order, start=1):
            c.rank = rank

    # ---- file form -------------------------------------------------------------------------------
    def write(self, folder: Path | str) -> None:
        """Write every part into ``folder`` (which should be an atomic_directory)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for attr, name in self.IMAGE_FILES.items():
            image = getattr(self, attr)
            if image is not None:
                sitk.WriteImage(image, str(folder / name), useCompression=True)
        basis = self.ranking_basis
        rows = [dict(candidate_row(c), ranked_by=self.ranking, probability_from=self.probability_domain or "")
                for c in self.candidates]
        what_ran = {"ranking": self.ranking, "ranking_basis": basis, "ranking_text": self.ranking_text,
                    "probability_domain": self.probability_domain}
        (folder / "candidates.json").write_text(json.dumps(_json_safe(
            {"disclaimer": NOT_FOR_CLINICAL_USE, **what_ran, "candidates": [asdict(c) for c in self.candidates]}),
            indent=1, allow_nan=False))
        with open(folder / "candidates.csv", "w", newline="") as fh:
            fieldnames = list(rows[0]) if rows else ["id"]
            writer = csv.DictWriter(fh, fieldnames=fieldnames)
            writer.writeheader()
            writer.writerows(rows)
        patient = asdict(self.patient) | {"skipped": self.skipped, "notes": self.notes, **what_ran,
                                          "models_applied": sorted(self.applied_models()),
                                          "models_not_applied": {k: v.get("reason", "") for k, v in
                                                                 self.not_applied_models().items()},
                                          "disclaimer": NOT_FOR_CLINICAL_USE}
        (folder / "patient.json").write_text(json.dumps(_json_safe(patient), indent=1, allow_nan=False))
        provenance = dict(self.provenance)
        provenance.pop("models", None)  # an older run's list of every model given, applied or not
        provenance["models_applied"] = {k: _model_record(v) for k, v in self.applied_models().items()}
        provenance["models_not_applied"] = {k: _model_record(v) for k, v in self.not_applied_models().items()}
        provenance["ranking_basis"] = basis
        (folder / "provenance.json").write_text(json.dumps(_json_safe(provenance), indent=1, default=str))
        self._write_other_findings(folder)

    def _write_other_findings(self, folder: Path) -> None:
        """other_findings.csv beside candidates.csv and the same rows under candidates.json's ``other_findings``."""
        if self.other_findings is None:
            return
        from .candidates.from_pet import OTHER_FINDINGS_FIELDS, OTHER_FINDINGS_NAME

        document = json.loads((folder / "candidates.json").read_text())
        document["other_findings"] = _json_safe(self.other_findings)
        (folder / "candidates.json").write_text(json.dumps(document, indent=1, allow_nan=False))
        with open(folder / OTHER_FINDINGS_NAME, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=OTHER_FINDINGS_FIELDS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self.other_findings)

    @classmethod
    def read(cls, folder: Path | str) -> "Results":
        folder = Path(folder)
        if not (folder / "candidates.json").is_file():
            raise InputFileError(f"{folder} is not a results folder of 'lnstaging run' (no candidates.json): run it first.")
        results = cls()
        for attr, name in cls.IMAGE_FILES.items():
            if (folder / name).is_file():
                setattr(results, attr, sitk.ReadImage(str(folder / name)))
        data = json.loads((folder / "candidates.json").read_text())
        results.candidates = [Candidate(**_nan_for_null(c)) for c in data["candidates"]]
        results.ranking = data.get("ranking", "probability")
        results.probability_domain = data.get("probability_domain", "")
        results.other_findings = data.get("other_findings")
        results.probability_score = (data.get("ranking_basis") or {}).get("stage") or ""
        results.probability_score = {v: k for k, v in PROBABILITY_SCORES.items()}.get(results.probability_score, "")
        if (folder / "patient.json").is_file():
            p = json.loads((folder / "patient.json").read_text())
            results.skipped = p.pop("skipped", [])
            results.notes = p.pop("notes", [])
            known = set(PatientResult.__dataclass_fields__)
            results.patient = PatientResult(**{k: v for k, v in p.items() if k in known})
        if (folder / "provenance.json").is_file():
            results.provenance = json.loads((folder / "provenance.json").read_text())
            results.models = _models_from_provenance(results.provenance)
        return results


def _model_record(info: dict) -> dict:
    keep = ("id", "sha256", "training_domain") if info.get("applied") else ("id", "sha256", "reason")
    return {k: info.get(k, "") for k in keep}


def _models_from_provenance(provenance: dict) -> dict:
    """Results.models from provenance.json (models_applied / models_not_applied; an older run's "models" were all
    given, and are taken as applied)."""
    models = {}
    applied = provenance.get("models_applied", provenance.get("models")) or {}
    for stage, info in applied.items():
        if isinstance(info, dict):
            models[stage] = dict(info, applied=True, reason="")
    for stage, info in (provenance.get("models_not_applied") or {}).items():
        if isinstance(info, dict):
            models[stage] = dict(info, applied=False)
    return models


def _nan_for_null(row: dict) -> dict:
    """candidates.json writes an uncomputed SUV as null; the dataclass holds NaN for it."""
    return {k: (float("nan") if v is None and k in ("suv_max", "suv_peak") else v) for k, v in row.items()}


def candidate_row(c: Candidate) -> dict:
    """A flat row for CSV and tables: priors become prior_<name> columns."""
    row = {
        "id": c.id,
        "name": c.name,
        "rank": c.rank,
        "probability": "" if c.probability is None else round(c.probability, 6),
        "x_lps_mm": round(c.centroid_lps[0], 2),
        "y_lps_mm": round(c.centroid_lps[1], 2),
        "z_lps_mm": round(c.centroid_lps[2], 2),
        "volume_ml": round(c.volume_ml, 4),
        "short_axis_mm": round(c.short_axis_mm, 2),
        "suv_max": _rounded(c.suv_max, 4),
        "suv_peak": _rounded(c.suv_peak, 4),
        "source": c.source,
        "review": c.review,
    }
    row.update({f"score_{k}": round(v, 6) for k, v in c.scores.items()})
    row.update({f"prior_{k}": round(v, 6) for k, v in c.priors.items()})
    return row


def _rounded(value: float, digits: int):
    """A rounded value, or "" (an empty cell, not 0 or nan) when it was not computed."""
    return "" if value is None or value != value else round(value, digits)
