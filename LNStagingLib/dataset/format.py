"""The cohort folder format of docs/DATASET.md: read a dataset.json and the files of its cases.

This is the interface users bring their own hospital data in, and what training and evaluation read.
``read_dataset`` checks the description (dataset.json) and raises ``DatasetError`` saying what to fix;
per-case files are opened lazily. ``lnstaging dataset check`` (dataset/check.py) inspects every file.
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import SimpleITK as sitk

from ..anatomy.structures import PDAC20_LABELS  # noqa: F401  the pdac20 convention, re-exported for datasets
from ..errors import DatasetError
from ..io.resample import same_grid, snap_to_grid

FORMAT = "lnstaging-dataset/1"
DATASET_JSON = "dataset.json"
CASES_DIR = "cases"
PATIENT_JSON = "patient.json"
CANDIDATES_CSV = "candidates.csv"

# key -> file stem. NIfTI (.nii.gz) is the documented form; .nii, .nrrd and .mha are accepted too.
IMAGE_KEYS = ("ct", "pet", "organs", "tumor", "gtv_ln", "lymph_nodes")
REQUIRED_IMAGE_KEYS = ("ct", "pet", "tumor", "gtv_ln")
# organs: absent in a cohort imported without organ masks (the attention model of stage 1 needs them; see check.py)
OPTIONAL_IMAGE_KEYS = ("organs", "lymph_nodes")
IMAGE_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".mha")
CANDIDATE_COLUMNS = ("id", "x", "y", "z", "label", "node_id")
ORGAN_MAPPINGS = ("pdac20", "totalsegmentator", "slicer")

def _int_or_float(text: str) -> Any:
    """Parse a CSV cell as int, then float; keep text that is neither (extra columns)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


@dataclass
class CaseFiles:
    """The files of one case. Paths are resolved on demand; images are read only when asked for."""

    case_id: str
    root: Path

    def path(self, key: str) -> Path:
        """Path of an image key (ct, pet, organs, tumor, gtv_ln, lymph_nodes), or of 'candidates'/'patient'.

        Returns the .nii.gz path when no file of an accepted extension exists (so messages name the expected file).
        """
        if key == "candidates":
            return self.root / CANDIDATES_CSV
        if key == "patient":
            return self.root / PATIENT_JSON
        if key not in IMAGE_KEYS:
            raise DatasetError(f"Unknown case file key {key!r}; use one of {', '.join(IMAGE_KEYS)}, candidates, patient.")
        for ext in IMAGE_EXTENSIONS:
            candidate = self.root / f"{key}{ext}"
            if candidate.exists():
                return candidate
        return self.root / f"{key}.nii.gz"

    def has(self, key: str) -> bool:
        return self.path(key).exists()

    def load(self, key: str) -> sitk.Image:
        """Read an image; PET is returned resampled (linear) onto the CT grid, in SUV."""
        path = self.path(key)
        if not path.exists():
            raise DatasetError(f"Case {self.case_id}: {path.name} is missing; add it as described in docs/DATASET.md.")
        image = _read_image(path, self.case_id)
        if key == "pet":
            reference = self.load("ct")
            if same_grid(image, reference):
                image = snap_to_grid(image, reference)  # near-identical grids are the CT's
            else:
                image = sitk.Resample(image, reference, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        return image

    def candidates(self) -> list[dict]:
        """The rows of candidates.csv as dicts (id, node_id, label as int; x, y, z in LPS mm as float)."""
        path = self.path("candidates")
        if not path.exists():
            raise DatasetError(f"Case {self.case_id}: {CANDIDATES_CSV} is missing; this step needs a ground-truthed "
                               "candidate list (see docs/DATASET.md).")
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in CANDIDATE_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise DatasetError(f"Case {self.case_id}: {CANDIDATES_CSV} lacks column(s) {', '.join(missing)}; "
                                   f"the header must be {','.join(CANDIDATE_COLUMNS)}.")
            rows = []
            for line, raw in enumerate(reader, start=2):
                try:
                    row = {k: _int_or_float(v) for k, v in raw.items() if k is not None}
                    row["id"], row["label"], row["node_id"] = int(raw["id"]), int(raw["label"]), int(raw["node_id"])
                    row["x"], row["y"], row["z"] = float(raw["x"]), float(raw["y"]), float(raw["z"])
                except (TypeError, ValueError):
                    raise DatasetError(f"Case {self.case_id}: {CANDIDATES_CSV} line {line} is not a number where one is "
                                       "expected; fix that row.") from None
                rows.append(row)
        return rows

    @property
    def metastasis(self) -> int:
        """Patient-level label from patient.json: 1 if any lymph node is metastatic."""
        path = self.path("patient")
        try:
            value = json.loads(path.read_text())["metastasis"]
        except FileNotFoundError:
            raise DatasetError(f"Case {self.case_id}: {PATIENT_JSON} is missing; write {{\"metastasis\": 0 or 1}}.") from None
        except (json.JSONDecodeError, KeyError, TypeError):
            raise DatasetError(f"Case {self.case_id}: {PATIENT_JSON} must be JSON like {{\"metastasis\": 0 or 1}}.") from None
        if value not in (0, 1) or isinstance(value, float):
            raise DatasetError(f"Case {self.case_id}: metastasis in {PATIENT_JSON} must be 0 or 1, not {value!r}.")
        return int(value)


@dataclass
class Dataset:
    """A cohort described by dataset.json."""

    root: Path
    name: str
    description: str
    case_ids: list[str]
    organ_labels: dict[int, str]
    organ_mapping: Any
    folds: dict[str, int]
    test_ids: list[str]
    extra: dict = field(default_factory=dict)

    @property
    def n_folds(self) -> int:
        return max(self.folds.values()) + 1 if self.folds else 0

    def fold_of(self, case_id: str) -> int | None:
        """Cross-validation fold of a case; None for held-out test cases."""
        if case_id not in self.case_ids:
            raise DatasetError(f"Case {case_id!r} is not listed in {self.root / DATASET_JSON}.")
        return self.folds.get(case_id)

    def split(self, fold: int) -> tuple[list[str], list[str]]:
        """(train_ids, val_ids): val = cases of this fold, train = the other non-test cases."""
        if not 0 <= fold < max(self.n_folds, 1):
            raise DatasetError(f"Fold {fold} does not exist; this dataset has folds 0..{self.n_folds - 1}.")
        test = set(self.test_ids)
        val = [c for c in self.case_ids if self.folds.get(c) == fold]
        train = [c for c in self.case_ids if c not in test and self.folds.get(c) != fold]
        return train, val

    @property
    def trainval_ids(self) -> list[str]:
        test = set(self.test_ids)
        return [c for c in self.case_ids if c not in test]

    def case(self, case_id: str) -> CaseFiles:
        if case_id not in self.case_ids:
            raise DatasetError(f"Case {case_id!r} is not listed in {self.root / DATASET_JSON}.")
        return CaseFiles(case_id, self.root / CASES_DIR / case_id)


def description_problems(meta: Any) -> list[str]:
    """Every problem in a parsed dataset.json (empty list when it follows the format)."""
    if not isinstance(meta, dict):
        return [f"{DATASET_JSON} must hold a JSON object."]
    problems = []
    if meta.get("format") != FORMAT:
        problems.append(f"{DATASET_JSON}: \"format\" must be \"{FORMAT}\", found {meta.get('format')!r}.")
    cases = meta.get("cases")
    if not isinstance(cases, list) or not cases or not all(isinstance(c, str) and c for c in cases):
        problems.append(f"{DATASET_JSON}: \"cases\" must be a non-empty list of case id strings.")
        cases = []
    elif len(set(cases)) != len(cases):
        problems.append(f"{DATASET_JSON}: \"cases\" lists some case ids twice.")
    for bad in [c for c in cases if "/" in c or "\\" in c or c in (".", "..")]:
        problems.append(f"{DATASET_JSON}: case id {bad!r} must be a plain folder name.")
    labels = meta.get("organ_labels")
    if not isinstance(labels, dict):  # {} for a cohort without organ masks
        problems.append(f"{DATASET_JSON}: \"organ_labels\" must map label ids (\"1\", \"5\", ...) to organ names.")
    else:
        for key, value in labels.items():
            if not str(key).isdigit() or int(key) == 0:
                problems.append(f"{DATASET_JSON}: organ label id {key!r} must be a positive integer.")
            if not isinstance(value, str) or not value:
                problems.append(f"{DATASET_JSON}: organ label {key!r} needs a name.")
    mapping = meta.get("organ_mapping")
    if not (mapping in ORGAN_MAPPINGS or isinstance(mapping, dict)):
        problems.append(f"{DATASET_JSON}: \"organ_mapping\" must be one of {', '.join(ORGAN_MAPPINGS)} or an object "
                        f"mapping structure names to label names, found {mapping!r}.")
    known = set(cases)
    folds = meta.get("folds", {})
    if not isinstance(folds, dict):
        problems.append(f"{DATASET_JSON}: \"folds\" must map case ids to fold numbers 0..K-1.")
        folds = {}
    for case_id, k in folds.items():
        if case_id not in known:
            problems.append(f"{DATASET_JSON}: fold entry {case_id!r} is not in \"cases\".")
        if not isinstance(k, int) or isinstance(k, bool) or k < 0:
            problems.append(f"{DATASET_JSON}: fold of {case_id!r} must be an integer >= 0, found {k!r}.")
    fold_numbers = {k for k in folds.values() if isinstance(k, int)}
    if fold_numbers and fold_numbers != set(range(max(fold_numbers) + 1)):
        problems.append(f"{DATASET_JSON}: folds must be numbered 0..K-1 without gaps, found {sorted(fold_numbers)}.")
    test = meta.get("test", [])
    if not isinstance(test, list):
        problems.append(f"{DATASET_JSON}: \"test\" must be a list of case ids.")
        test = []
    for case_id in test:
        if case_id not in known:
            problems.append(f"{DATASET_JSON}: test case {case_id!r} is not in \"cases\".")
        if case_id in folds:
            problems.append(f"{DATASET_JSON}: test case {case_id!r} also has a fold; held-out cases must not.")
    for case_id in cases:
        if case_id not in folds and case_id not in test:
            problems.append(f"{DATASET_JSON}: case {case_id!r} has neither a fold nor a place in \"test\".")
    return problems


def load_description(root: Path) -> Any:
    """Parse dataset.json, raising DatasetError if it is missing or not JSON."""
    path = Path(root) / DATASET_JSON
    if not Path(root).is_dir():
        from ..io.outputs import resolved

        resolved(root, "--data", DatasetError)  # a symbolic link loop says so
        raise DatasetError(f"{root} is not a folder; give the cohort folder that holds {DATASET_JSON}.")
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{path} is missing; every cohort folder needs one (see docs/DATASET.md).") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path} is not valid JSON ({error}); fix the file.") from None


def read_dataset(root: str | Path) -> Dataset:
    """Open a cohort folder; raise DatasetError listing what to fix in its dataset.json."""
    root = Path(root).absolute()
    meta = load_description(root)
    problems = description_problems(meta)
    if problems:
        more = f" (and {len(problems) - 1} more; run `lnstaging dataset check {root}`)" if len(problems) > 1 else ""
        raise DatasetError(problems[0] + more)
    known = {"format", "name", "description", "organ_labels", "organ_mapping", "cases", "folds", "test"}
    return Dataset(
        root=root,
        name=str(meta.get("name", root.name)),
        description=str(meta.get("description", "")),
        case_ids=list(meta["cases"]),
        organ_labels={int(k): v for k, v in meta["organ_labels"].items()},
        organ_mapping=meta["organ_mapping"],
        folds={k: int(v) for k, v in meta.get("folds", {}).items()},
        test_ids=list(meta.get("test", [])),
        extra={k: v for k, v in meta.items() if k not in known},
    )


def assign_splits(case_ids: Iterable[str], folds: int = 5, test_fraction: float = 0.2,
                  seed: int = 0) -> tuple[dict[str, int], list[str]]:
    """Deterministic split: a held-out test list, and the rest spread round-robin over ``folds`` folds.

    A test fraction above 0 gives at least one test case; every fold gets a case first, so a cohort too small for
    both has no test case (the caller says so)."""
    ids = list(case_ids)
    order = ids[:]
    random.Random(seed).shuffle(order)
    n_test = int(round(test_fraction * len(ids)))
    if test_fraction > 0:
        n_test = max(1, n_test)
    if len(ids) - n_test < folds:
        n_test = max(0, len(ids) - folds)
    test = set(order[:n_test])
    rest = order[n_test:]
    fold_map = {case_id: i % max(folds, 1) for i, case_id in enumerate(rest)}
    return ({c: fold_map[c] for c in ids if c in fold_map}, [c for c in ids if c in test])


def write_description(root: str | Path, *, name: str, case_ids: list[str], organ_labels: dict[int, str],
                      organ_mapping: Any, folds: dict[str, int], test: list[str], description: str = "",
                      **extra: Any) -> Path:
    """Write dataset.json (validated first, so a writer cannot produce a folder the reader rejects)."""
    meta = {"format": FORMAT, "name": name, "description": description,
            "organ_labels": {str(k): v for k, v in sorted(organ_labels.items())},
            "organ_mapping": organ_mapping, "cases": list(case_ids), "folds": dict(folds), "test": list(test), **extra}
    problems = description_problems(meta)
    if problems:
        raise DatasetError(problems[0])
    path = Path(root) / DATASET_JSON
    path.write_text(json.dumps(meta, indent=1) + "\n")
    return path


def write_candidates(path: str | Path, rows: list[dict]) -> None:
    """Write candidates.csv with the required columns first, then any extra columns of the rows."""
    extra = sorted({k for row in rows for k in row} - set(CANDIDATE_COLUMNS))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*CANDIDATE_COLUMNS, *extra], lineterminator="\n")
        writer.writeheader()
        for row in rows:
            out = dict(row)
            for key in ("x", "y", "z"):
                out[key] = f"{float(row[key]):.3f}"
            writer.writerow(out)


def _read_image(path: Path, case_id: str) -> sitk.Image:
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError:
        raise DatasetError(f"Case {case_id}: {path.name} cannot be read as an image; re-export it as NIfTI.") from None
