"""The cohort folder format: round trip through the phantom writer and read_dataset, splits, errors."""

import json

import numpy as np
import pytest
import SimpleITK as sitk

from LNStagingLib.dataset.format import (
    FORMAT, PDAC20_LABELS, assign_splits, description_problems, read_dataset, write_description,
)
from LNStagingLib.errors import DatasetError
from LNStagingLib.phantom import write_cohort
from LNStagingLib.phantom.cohort import case_seed


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return write_cohort(tmp_path_factory.mktemp("cohort") / "phantom", seed=7, cases=6, direction="mixed")


def test_read_dataset_round_trip(cohort):
    ds = read_dataset(cohort)
    assert ds.name == "phantom-seed7" and ds.organ_mapping == "pdac20"
    assert ds.case_ids == [f"case{k:03d}" for k in range(6)]
    assert ds.organ_labels == PDAC20_LABELS
    assert len(ds.test_ids) == 1 and ds.fold_of(ds.test_ids[0]) is None
    for fold in range(ds.n_folds):
        train, val = ds.split(fold)
        assert val and not set(train) & set(val)
        assert not (set(train) | set(val)) & set(ds.test_ids)
        assert set(train) | set(val) == set(ds.trainval_ids)
        assert all(ds.fold_of(c) == fold for c in val)
    with pytest.raises(DatasetError):
        ds.split(ds.n_folds)
    with pytest.raises(DatasetError):
        ds.case("nobody")


def test_case_files_load_on_the_ct_grid(cohort):
    ds = read_dataset(cohort)
    directions = set()
    for case_id in ds.case_ids:
        case = ds.case(case_id)
        ct = case.load("ct")
        directions.add(ct.GetDirection())
        assert ct.GetPixelID() == sitk.sitkInt16
        pet = case.load("pet")
        assert pet.GetSize() == ct.GetSize() and pet.GetDirection() == ct.GetDirection()
        assert pet.GetPixelID() == sitk.sitkFloat32
        native = sitk.ReadImage(str(case.path("pet")))
        assert native.GetSize() != ct.GetSize(), "the phantom writes PET on its own coarser grid"
        gtv = sitk.GetArrayFromImage(case.load("gtv_ln"))
        assert case.metastasis == int(gtv.any())
        rows = case.candidates()
        assert all(isinstance(r["id"], int) and isinstance(r["x"], float) and r["label"] in (0, 1) for r in rows)
        assert {r["node_id"] for r in rows if r["label"] == 1} == set(np.unique(gtv).tolist()) - {0}
    assert len(directions) == 3, "mixed cohort exercises identity, oblique and RAS grids"


def test_pet_resampling_keeps_uptake_in_world_space(cohort):
    """A hot tumour stays hot after PET is resampled onto an oblique CT grid."""
    ds = read_dataset(cohort)
    case = ds.case("case001")  # oblique in a mixed cohort
    assert not np.allclose(np.reshape(case.load("ct").GetDirection(), (3, 3)), np.eye(3))
    pet = sitk.GetArrayFromImage(case.load("pet"))
    tumor = sitk.GetArrayFromImage(case.load("tumor")) > 0
    assert pet[tumor].mean() > 2 * np.median(pet)


def test_same_seed_writes_the_same_cohort(cohort, tmp_path):
    again = write_cohort(tmp_path / "again", seed=7, cases=2, direction="mixed")
    for case_id in ("case000", "case001"):
        for name in ("candidates.csv", "patient.json"):
            assert (again / "cases" / case_id / name).read_text() == (cohort / "cases" / case_id / name).read_text()
        a = sitk.GetArrayFromImage(sitk.ReadImage(str(again / "cases" / case_id / "ct.nii.gz")))
        b = sitk.GetArrayFromImage(sitk.ReadImage(str(cohort / "cases" / case_id / "ct.nii.gz")))
        np.testing.assert_array_equal(a, b)
    assert json.loads((cohort / "cases/case000/patient.json").read_text())["seed"] == case_seed(7, 0)


def test_read_dataset_errors_say_what_to_fix(tmp_path):
    with pytest.raises(DatasetError, match="not a folder"):
        read_dataset(tmp_path / "missing")
    with pytest.raises(DatasetError, match="dataset.json is missing"):
        read_dataset(tmp_path)
    (tmp_path / "dataset.json").write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        read_dataset(tmp_path)
    (tmp_path / "dataset.json").write_text(json.dumps({"format": "other", "cases": ["a"]}))
    with pytest.raises(DatasetError, match="format"):
        read_dataset(tmp_path)


def test_missing_optional_files_raise_not_return_empty(cohort, tmp_path):
    import shutil

    copy = tmp_path / "c"
    shutil.copytree(cohort, copy)
    (copy / "cases/case000/candidates.csv").unlink()
    (copy / "cases/case000/patient.json").write_text('{"metastasis": 2}')
    case = read_dataset(copy).case("case000")
    assert not case.has("candidates")
    with pytest.raises(DatasetError, match="candidates.csv is missing"):
        case.candidates()
    with pytest.raises(DatasetError, match="0 or 1"):
        _ = case.metastasis


def test_splits_are_deterministic_and_complete():
    ids = [f"p{i}" for i in range(23)]
    folds, test = assign_splits(ids, folds=5, test_fraction=0.2, seed=3)
    assert (folds, test) == assign_splits(ids, folds=5, test_fraction=0.2, seed=3)
    assert len(test) == 5 and set(folds) | set(test) == set(ids) and not set(folds) & set(test)
    assert sorted(set(folds.values())) == [0, 1, 2, 3, 4]
    assert description_problems({"format": FORMAT, "cases": ids, "organ_labels": {"1": "spleen"},
                                 "organ_mapping": "pdac20", "folds": folds, "test": test}) == []


def test_description_problems_lists_all(tmp_path):
    meta = {"format": FORMAT, "cases": ["a", "b", "a"], "organ_labels": {"x": "spleen"}, "organ_mapping": "nope",
            "folds": {"a": 0, "ghost": 2}, "test": ["zzz"]}
    problems = "\n".join(description_problems(meta))
    for expected in ("twice", "'x'", "organ_mapping", "'ghost'", "'zzz'", "without gaps", "'b' has neither"):
        assert expected in problems, expected
    with pytest.raises(DatasetError):
        write_description(tmp_path, name="x", case_ids=["a"], organ_labels={1: "s"}, organ_mapping="pdac20",
                          folds={"b": 0}, test=[])
