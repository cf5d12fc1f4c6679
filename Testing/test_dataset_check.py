"""`lnstaging dataset check` finds every planted problem, one line each, and passes a clean cohort."""

import csv
import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from LNStagingLib.cli import main as cli
from LNStagingLib.dataset.check import check_dataset
from LNStagingLib.phantom import write_cohort


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = write_cohort(tmp_path_factory.mktemp("check") / "cohort", seed=7, cases=4, direction="mixed")
    return root


def positive_case(root):
    for folder in sorted((root / "cases").iterdir()):
        if json.loads((folder / "patient.json").read_text())["metastasis"]:
            return folder
    raise AssertionError("the fixture cohort needs a metastatic case; change the seed")


def edit_image(path, change):
    image = sitk.ReadImage(str(path))
    array = sitk.GetArrayFromImage(image)
    out = change(array, image)
    if not isinstance(out, sitk.Image):
        out = sitk.GetImageFromArray(out)
        out.CopyInformation(image)
    sitk.WriteImage(out, str(path))


def drop_positive_candidates(case):
    rows = list(csv.DictReader(open(case / "candidates.csv")))
    with open(case / "candidates.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(r for r in rows if r["label"] != "1")


def edit_json(path, change):
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def shift_origin(array, image):
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(image)
    out.SetOrigin(tuple(v + 5.0 for v in image.GetOrigin()))
    return out


def move_pet_away(array, image):
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(image)
    out.SetOrigin(tuple(v + 5000.0 for v in image.GetOrigin()))
    return out


def set_value(value, where="centre"):
    def change(array, image):
        array = array.copy()
        array[array.shape[0] // 2, array.shape[1] // 2, array.shape[2] // 2] = value
        return array
    return change


def relabel_gtv(array, image):
    array = array.copy()
    array[array > 0] = array.max() + 100
    return array


def nan_pet_as_nrrd(case):
    """NaN planted in an NRRD PET (ITK's NIfTI reader turns NaN into 0, so NIfTI cannot carry this problem)."""
    image = sitk.ReadImage(str(case / "pet.nii.gz"))
    array = sitk.GetArrayFromImage(image)
    array[array.shape[0] // 2, array.shape[1] // 2, array.shape[2] // 2] = np.nan
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(image)
    (case / "pet.nii.gz").unlink()
    sitk.WriteImage(out, str(case / "pet.nrrd"))


def move_candidate_outside(case):
    text = (case / "candidates.csv").read_text().splitlines()
    cells = text[1].split(",")
    cells[1] = "9999.0"
    text[1] = ",".join(cells)
    (case / "candidates.csv").write_text("\n".join(text) + "\n")


PLANTED = {
    "missing CT": (lambda root, pos: (pos / "ct.nii.gz").unlink(), "ct.nii.gz is missing"),
    "missing case folder": (lambda root, pos: shutil.rmtree(pos), f"is missing"),
    "unreadable image": (lambda root, pos: (pos / "pet.nii.gz").write_bytes(b"\x1f\x8bnot really gzip"), "cannot be read"),
    "grid mismatch": (lambda root, pos: edit_image(pos / "organs.nii.gz", shift_origin), "not on the CT grid"),
    "unknown organ label": (lambda root, pos: edit_image(pos / "organs.nii.gz", set_value(21)), "label(s) 21 not named"),
    "empty tumour": (lambda root, pos: edit_image(pos / "tumor.nii.gz", lambda a, i: np.zeros_like(a)), "tumor.nii.gz is empty"),
    "gtv_ln id missing from candidates": (lambda root, pos: drop_positive_candidates(pos), "has no candidate with label 1"),
    "gtv_ln differs from lymph_nodes": (lambda root, pos: edit_image(pos / "gtv_ln.nii.gz", relabel_gtv), "not the same node"),
    "bad dataset.json": (lambda root, pos: (root / "dataset.json").write_text("{"), "not valid JSON"),
    "fold id not a case": (lambda root, pos: edit_json(root / "dataset.json", lambda m: m["folds"].update(ghost=0)),
                           "fold entry 'ghost'"),
    "test id not a case": (lambda root, pos: edit_json(root / "dataset.json", lambda m: m["test"].append("ghost")),
                           "test case 'ghost'"),
    "patient label disagrees": (lambda root, pos: (pos / "patient.json").write_text('{"metastasis": 0}'),
                                "says metastasis 0"),
    "patient.json missing": (lambda root, pos: (pos / "patient.json").unlink(), "patient.json is missing"),
    "NaN in PET": (lambda root, pos: nan_pet_as_nrrd(pos), "NaN"),
    "PET elsewhere": (lambda root, pos: edit_image(pos / "pet.nii.gz", move_pet_away), "does not overlap"),
    "2D image": (lambda root, pos: edit_image(pos / "tumor.nii.gz", lambda a, i: sitk.GetImageFromArray(a[a.shape[0] // 2])),
                 "must be a 3D single-channel image"),
    "float label map": (lambda root, pos: edit_image(pos / "organs.nii.gz", lambda a, i: a.astype(np.float32)),
                        "must hold integer labels"),
    "candidate outside CT": (lambda root, pos: move_candidate_outside(pos), "lies outside the CT"),
    "CT in stored values, not HU": (lambda root, pos: edit_image(pos / "ct.nii.gz", lambda a, i: (a + 1024).astype(np.uint16)),
                                    "not Hounsfield units"),
    "PET saved as the CT": (lambda root, pos: shutil.copy(pos / "pet.nii.gz", pos / "ct.nii.gz"), "not a CT"),
    "unlisted case folder": (lambda root, pos: shutil.copytree(pos, root / "cases" / "stray"), "cases/stray is not listed"),
}


def test_clean_cohort_passes(clean, capsys):
    report = check_dataset(clean)
    assert report.ok, report.problems
    assert report.cases == 4 and report.nodes >= 20 and report.candidates > report.nodes
    assert cli(["dataset", "check", str(clean)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: 4 cases")  # then one line per training stage (issue 30): a phantom trains them all
    assert out.strip().splitlines()[1:] == [f"stage {stage}: 4 of 4 case(s) trainable" for stage in ("seg", "cls", "patient")]


def test_stage_lines_name_the_cases_a_stage_cannot_train(clean, tmp_path):
    cohort = tmp_path / "cohort"
    shutil.copytree(clean, cohort)
    first = sorted((cohort / "cases").iterdir())[0]
    (first / "organs.nii.gz").unlink()  # allowed by the format: a case without organ masks
    (first / "candidates.csv").unlink()
    report = check_dataset(cohort)
    assert report.ok, report.problems
    lines = report.stage_lines()
    assert lines[0] == f"stage seg: 3 of 4 case(s) trainable ({first.name} lacks organs.nii.gz)"
    assert lines[1] == f"stage cls: 3 of 4 case(s) trainable ({first.name} lacks candidates.csv)"
    assert lines[2] == "stage patient: 4 of 4 case(s) trainable"


@pytest.mark.parametrize("name", list(PLANTED))
def test_planted_problem_is_reported(clean, tmp_path, capsys, name):
    root = tmp_path / "broken"
    shutil.copytree(clean, root)
    plant, expected = PLANTED[name]
    pos = positive_case(root)
    plant(root, pos)
    problems = check_dataset(root).problems
    assert any(expected in p for p in problems), problems
    assert cli(["dataset", "check", str(root)]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and any(expected in line for line in captured.out.splitlines())


def test_every_problem_is_reported_not_just_the_first(clean, tmp_path):
    root = tmp_path / "broken"
    shutil.copytree(clean, root)
    cases = sorted((root / "cases").iterdir())
    pos = positive_case(root)
    others = [c for c in cases if c != pos]
    (others[0] / "ct.nii.gz").unlink()
    edit_image(others[1] / "tumor.nii.gz", lambda a, i: np.zeros_like(a))
    edit_image(others[2] / "organs.nii.gz", set_value(21))
    drop_positive_candidates(pos)
    edit_json(root / "dataset.json", lambda m: m["test"].append("ghost"))
    problems = check_dataset(root).problems
    for expected in (f"{others[0].name}: ct.nii.gz is missing", f"{others[1].name}: tumor.nii.gz is empty",
                     f"{others[2].name}: organs.nii.gz has label(s) 21", f"{pos.name}: gtv_ln id", "test case 'ghost'"):
        assert any(p.startswith(expected) or expected in p for p in problems), (expected, problems)
