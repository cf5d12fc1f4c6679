"""Inspect a cohort folder and list every problem, one sentence each, instead of stopping at the first.

Used by ``lnstaging dataset check DIR``: users converting their own hospital data fix the whole list in one go.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import DatasetError
from ..io.ct_values import ct_value_problem
from ..io.resample import same_grid
from .format import (
    CANDIDATE_COLUMNS, CANDIDATES_CSV, CASES_DIR, DATASET_JSON, IMAGE_KEYS, PATIENT_JSON, REQUIRED_IMAGE_KEYS,
    CaseFiles, description_problems, load_description,
)

LABEL_KEYS = ("organs", "tumor", "gtv_ln", "lymph_nodes")
#: What each training stage reads of a case (docs/TRAINING.md): stage 1's attention model needs the organ masks,
#: stage 2 the ground-truthed candidate list, stage 3 the tumour (patches) and the patient label.
STAGE_NEEDS = {"seg": ("ct", "pet", "gtv_ln", "organs"), "cls": ("ct", "pet", "tumor", "gtv_ln", "candidates"),
               "patient": ("ct", "tumor", "gtv_ln", "patient")}


@dataclass
class CheckReport:
    problems: list[str] = field(default_factory=list)
    cases: int = 0
    folds: int = 0
    test: int = 0
    nodes: int = 0
    positive_nodes: int = 0
    candidates: int = 0
    metastatic_patients: int = 0
    trainable: dict[str, list[str]] = field(default_factory=lambda: {stage: [] for stage in STAGE_NEEDS})
    lacking: dict[str, dict[str, list[str]]] = field(default_factory=lambda: {stage: {} for stage in STAGE_NEEDS})

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        return (f"{self.cases} cases ({self.folds} folds, {self.test} held-out test), {self.metastatic_patients} with "
                f"metastasis; {self.positive_nodes} GTV_LN nodes of {self.nodes} lymph nodes; {self.candidates} "
                "candidates.")

    def stage_lines(self) -> list[str]:
        """Per training stage, how many cases it can train on and which it cannot (the files they lack)."""
        lines = []
        for stage, ids in self.trainable.items():
            missing = "; ".join(f"{case} lacks {', '.join(_file_name(k) for k in keys)}"
                                for case, keys in self.lacking[stage].items())
            lines.append(f"stage {stage}: {len(ids)} of {self.cases} case(s) trainable" + (f" ({missing})" if missing else ""))
        return lines


def _file_name(key: str) -> str:
    return {"candidates": CANDIDATES_CSV, "patient": PATIENT_JSON}.get(key, f"{key}.nii.gz")


def check_dataset(root: str | Path) -> CheckReport:
    """Every problem found in the cohort folder ``root`` (see docs/DATASET.md)."""
    root = Path(root)
    report = CheckReport()
    try:
        meta = load_description(root)
    except DatasetError as error:
        report.problems.append(str(error))
        return report
    report.problems += description_problems(meta)
    if not isinstance(meta, dict):
        return report
    cases = [c for c in meta.get("cases", []) if isinstance(c, str) and c] if isinstance(meta.get("cases"), list) else []
    labels = meta.get("organ_labels") if isinstance(meta.get("organ_labels"), dict) else {}
    organ_ids = {int(k) for k in labels if str(k).isdigit()}
    report.cases = len(cases)
    folds = meta.get("folds") if isinstance(meta.get("folds"), dict) else {}
    report.folds = len({v for v in folds.values() if isinstance(v, int)})
    report.test = len(meta.get("test", [])) if isinstance(meta.get("test"), list) else 0

    cases_dir = root / CASES_DIR
    if cases_dir.is_dir():
        for extra in sorted(p.name for p in cases_dir.iterdir() if p.is_dir() and p.name not in set(cases)):
            report.problems.append(f"{CASES_DIR}/{extra} is not listed in {DATASET_JSON} \"cases\"; list it or remove it.")
    for case_id in cases:
        if "/" in case_id or "\\" in case_id or case_id in (".", ".."):
            continue
        _check_case(CaseFiles(case_id, cases_dir / case_id), organ_ids, report)
    return report


def _check_case(case: CaseFiles, organ_ids: set[int], report: CheckReport) -> None:
    say = lambda text: report.problems.append(f"{case.case_id}: {text}")  # noqa: E731
    if not case.root.is_dir():
        say(f"folder {CASES_DIR}/{case.case_id} is missing.")
        return
    images: dict[str, sitk.Image] = {}
    for key in IMAGE_KEYS:
        path = case.path(key)
        if not path.exists():
            if key in REQUIRED_IMAGE_KEYS:
                say(f"{path.name} is missing.")
            continue
        try:
            image = sitk.ReadImage(str(path))
        except RuntimeError:
            say(f"{path.name} cannot be read as an image (corrupt or not NIfTI/NRRD).")
            continue
        if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
            say(f"{path.name} must be a 3D single-channel image, found {image.GetDimension()}D with "
                f"{image.GetNumberOfComponentsPerPixel()} component(s).")
            continue
        images[key] = image

    ct = images.get("ct")
    arrays = {}
    for key, image in images.items():
        if key in LABEL_KEYS:
            if not _is_integer(image):
                say(f"{case.path(key).name} must hold integer labels, found {image.GetPixelIDTypeAsString()}.")
                continue
            arrays[key] = sitk.GetArrayViewFromImage(image)
        if key != "ct" and key != "pet" and ct is not None and not same_grid(image, ct):
            say(f"{case.path(key).name} is not on the CT grid (size, spacing, origin or direction differ); "
                "resample it onto ct with nearest-neighbour interpolation.")
    if "pet" in images:
        pet = sitk.GetArrayViewFromImage(images["pet"])
        if not np.isfinite(pet).all():
            say("pet.nii.gz holds NaN or infinite values; fix the SUV conversion.")
        elif pet.size and pet.min() < -0.5:
            say(f"pet.nii.gz has negative values down to {pet.min():.2f}; it must hold SUV (>= 0).")
        if ct is not None and not _overlap(images["pet"], ct):
            say("pet.nii.gz does not overlap ct.nii.gz in space; check that both come from the same study and frame.")
    if ct is not None and not _is_integer(ct) and ct.GetPixelID() not in (sitk.sitkFloat32, sitk.sitkFloat64):
        say(f"ct.nii.gz has pixel type {ct.GetPixelIDTypeAsString()}; store HU as int16.")
    elif ct is not None:
        problem = ct_value_problem(ct, "ct.nii.gz")
        if problem:
            say(problem)

    if "organs" in arrays:
        unknown = sorted(set(np.unique(arrays["organs"]).tolist()) - organ_ids - {0})
        if unknown:
            say(f"organs.nii.gz has label(s) {', '.join(map(str, unknown))} not named in {DATASET_JSON} organ_labels; "
                "name them or relabel.")
    if "tumor" in arrays and not np.any(arrays["tumor"]):
        say("tumor.nii.gz is empty; the primary tumour must be contoured (spatial priors need it).")

    gtv_ids: set[int] = set()
    node_ids: set[int] | None = None
    if "gtv_ln" in arrays:
        gtv = arrays["gtv_ln"]
        gtv_ids = set(np.unique(gtv).tolist()) - {0}
        report.positive_nodes += len(gtv_ids)
        if "lymph_nodes" in arrays:
            nodes = arrays["lymph_nodes"]
            node_ids = set(np.unique(nodes).tolist()) - {0}
            report.nodes += len(node_ids)
            if nodes.shape == gtv.shape:
                inside = gtv > 0
                if np.any(nodes[inside] != gtv[inside]):
                    bad = sorted(set(np.unique(gtv[inside][nodes[inside] != gtv[inside]]).tolist()))
                    say(f"gtv_ln id(s) {', '.join(map(str, bad))} are not the same node in lymph_nodes.nii.gz; a positive "
                        "node must carry the same id in both.")
        else:
            report.nodes += len(gtv_ids)

    if case.has("candidates"):
        _check_candidates(case, gtv_ids, node_ids, ct, say, report)

    metastasis = _check_patient(case, say)
    present = set(images) | {k for k in ("candidates", "patient") if case.has(k)}
    for stage, needs in STAGE_NEEDS.items():
        lacking = [key for key in needs if key not in present]
        if lacking:
            report.lacking[stage][case.case_id] = lacking
        else:
            report.trainable[stage].append(case.case_id)
    if metastasis is not None:
        report.metastatic_patients += metastasis
        if "gtv_ln" in arrays and metastasis != int(bool(gtv_ids)):
            say(f"{PATIENT_JSON} says metastasis {metastasis} but gtv_ln.nii.gz has {len(gtv_ids)} node(s); make them agree.")


def _check_candidates(case, gtv_ids, node_ids, ct, say, report) -> None:
    try:
        with open(case.path("candidates"), newline="") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        say(f"{CANDIDATES_CSV} cannot be read ({error}).")
        return
    missing = [c for c in CANDIDATE_COLUMNS if c not in header]
    if missing:
        say(f"{CANDIDATES_CSV} lacks column(s) {', '.join(missing)}.")
        return
    report.candidates += len(rows)
    ids, positives = set(), set()
    for line, row in enumerate(rows, start=2):
        try:
            cid, label, node = int(row["id"]), int(row["label"]), int(row["node_id"])
            point = [float(row[k]) for k in ("x", "y", "z")]
        except (TypeError, ValueError):
            say(f"{CANDIDATES_CSV} line {line}: id, label and node_id must be integers and x, y, z numbers.")
            continue
        if cid in ids:
            say(f"{CANDIDATES_CSV} line {line}: candidate id {cid} is used twice.")
        ids.add(cid)
        if label not in (0, 1):
            say(f"{CANDIDATES_CSV} line {line}: label must be 0 or 1, found {label}.")
        if label == 1:
            positives.add(node)
            if node not in gtv_ids:
                say(f"{CANDIDATES_CSV} line {line}: label 1 but node_id {node} is not a node in gtv_ln.nii.gz.")
        elif node in gtv_ids:
            say(f"{CANDIDATES_CSV} line {line}: node_id {node} is a GTV_LN node but the label is 0.")
        if node and node_ids is not None and node not in node_ids:
            say(f"{CANDIDATES_CSV} line {line}: node_id {node} is not in lymph_nodes.nii.gz.")
        if ct is not None and not _inside(ct, point):
            say(f"{CANDIDATES_CSV} line {line}: point ({point[0]:.1f}, {point[1]:.1f}, {point[2]:.1f}) mm lies outside the "
                "CT; coordinates must be LPS world millimetres.")
    for node in sorted(gtv_ids - positives):
        say(f"gtv_ln id {node} has no candidate with label 1 and node_id {node} in {CANDIDATES_CSV}.")


def _check_patient(case, say) -> int | None:
    try:
        return case.metastasis
    except DatasetError as error:
        say(str(error).split(": ", 1)[-1])
        return None


def _is_integer(image: sitk.Image) -> bool:
    return image.GetPixelID() in (sitk.sitkUInt8, sitk.sitkInt8, sitk.sitkUInt16, sitk.sitkInt16, sitk.sitkUInt32,
                                  sitk.sitkInt32, sitk.sitkUInt64, sitk.sitkInt64)


def _corners(image: sitk.Image) -> np.ndarray:
    size = np.asarray(image.GetSize()) - 1
    return np.array([image.TransformContinuousIndexToPhysicalPoint([float(a * size[0]), float(b * size[1]), float(c * size[2])])
                     for a in (0, 1) for b in (0, 1) for c in (0, 1)])


def _overlap(a: sitk.Image, b: sitk.Image) -> bool:
    ca, cb = _corners(a), _corners(b)
    return bool(np.all(ca.min(0) <= cb.max(0)) and np.all(cb.min(0) <= ca.max(0)))


def _inside(image: sitk.Image, point) -> bool:
    index = np.asarray(image.TransformPhysicalPointToContinuousIndex([float(v) for v in point]))
    return bool(np.all(index >= -0.5) and np.all(index <= np.asarray(image.GetSize()) - 0.5))


__all__ = ["CheckReport", "check_dataset"]
