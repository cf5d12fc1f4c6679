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
    """Everything a run produced for one case. Images are SimpleITK images in LPS on the CT grid."""

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

    IMAGE_FILES = {"gtv_ln": "gtv_ln.nii.gz", "attention": "attention.nii.gz", "ln_probability": "ln_probability.nii.gz"}

    def candidate(self, candidate_id: int) -> Candidate:
        for c in self.candidates:
            if c.id == candidate_id:
                return c
        raise KeyError(candidate_id)

    @property
    def ranking_text(self) -> str:
        """What the rank means, in the user's words (every face shows it)."""
        if self.ranking == "suv_peak":
            return "ranked by SUVpeak (PET uptake), not by a learned probability"
        if self.probability_domain == "synthetic phantom":
            return ("ranked by the probability of models trained on synthetic phantoms only (not validated on "
                    "patients)")
        return "ranked by the model's probability"

    def rank_candidates(self) -> None:
        """Rank 1 = most probable (or highest SUVpeak when ranking by SUV); candidates without a value come last, in
        id order."""
        if self.ranking == "suv_peak":
            order = sorted(self.candidates, key=lambda c: (c.suv_peak != c.suv_peak, -(c.suv_peak if c.suv_peak == c.suv_peak else 0.0), c.id))
            for rank, c in enumerate(order, start=1):
                c.rank = rank
            return
        order = sorted(self.candidates, key=lambda c: (c.probability is None, -(c.probability or 0.0), c.id))
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
        rows = [dict(candidate_row(c), ranked_by=self.ranking, probability_from=self.probability_domain or "")
                for c in self.candidates]
        (folder / "candidates.json").write_text(json.dumps({"disclaimer": NOT_FOR_CLINICAL_USE, "ranking": self.ranking,
                                                            "ranking_text": self.ranking_text,
                                                            "probability_domain": self.probability_domain,
                                                            "candidates": [asdict(c) for c in self.candidates]}, indent=1))
        with open(folder / "candidates.csv", "w", newline="") as fh:
            fieldnames = list(rows[0]) if rows else ["id"]
            writer = csv.DictWriter(fh, fieldnames=fieldnames)
            writer.writeheader()
            writer.writerows(rows)
        patient = asdict(self.patient) | {"skipped": self.skipped, "ranking": self.ranking,
                                          "ranking_text": self.ranking_text,
                                          "probability_domain": self.probability_domain, "disclaimer": NOT_FOR_CLINICAL_USE}
        (folder / "patient.json").write_text(json.dumps(patient, indent=1))
        (folder / "provenance.json").write_text(json.dumps(self.provenance, indent=1, default=str))
        self._write_other_findings(folder)

    def _write_other_findings(self, folder: Path) -> None:
        """other_findings.csv beside candidates.csv and the same rows under candidates.json's ``other_findings``."""
        if self.other_findings is None:
            return
        from .candidates.from_pet import OTHER_FINDINGS_FIELDS, OTHER_FINDINGS_NAME

        document = json.loads((folder / "candidates.json").read_text())
        document["other_findings"] = self.other_findings
        (folder / "candidates.json").write_text(json.dumps(document, indent=1))
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
        results.candidates = [Candidate(**c) for c in data["candidates"]]
        results.ranking = data.get("ranking", "probability")
        results.probability_domain = data.get("probability_domain", "")
        results.other_findings = data.get("other_findings")
        if (folder / "patient.json").is_file():
            p = json.loads((folder / "patient.json").read_text())
            results.skipped = p.pop("skipped", [])
            p.pop("disclaimer", None)
            p.pop("ranking", None)
            p.pop("ranking_text", None)
            p.pop("probability_domain", None)
            results.patient = PatientResult(**p)
        if (folder / "provenance.json").is_file():
            results.provenance = json.loads((folder / "provenance.json").read_text())
        return results


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
        "suv_max": round(c.suv_max, 4),
        "suv_peak": round(c.suv_peak, 4),
        "source": c.source,
        "review": c.review,
    }
    row.update({f"score_{k}": round(v, 6) for k, v in c.scores.items()})
    row.update({f"prior_{k}": round(v, 6) for k, v in c.priors.items()})
    return row
