"""Import -> check -> train -> evaluate at cohort scale: a phantom DICOM export of 6 patients (identity, oblique and
RAS grids; RTSTRUCT and SEG contours under varied ROI names) against the phantom's own ground truth."""

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk

from LNStagingLib.cli import main
from LNStagingLib.dataset.check import check_dataset
from LNStagingLib.phantom.dicom_export import write_dicom_export


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    root = tmp_path_factory.mktemp("phantom_dicom")
    patients = write_dicom_export(root / "export", seed=7, cases=6, direction="mixed")
    code = main(["dataset", "import", "--dicom", str(root / "export" / "dicom"), "--organs-from",
                 str(root / "export" / "organs"), "--out", str(root / "cohort")])
    with open(root / "cohort_patient_ids.csv") as handle:
        mapping = {row["patient_id"]: row["case_id"] for row in csv.DictReader(handle)}
    return code, root, patients, mapping


def _array(path):
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _dice(a, b):
    return 2 * np.sum(a & b) / (a.sum() + b.sum())


def test_every_patient_is_imported_and_nothing_identifying_is_in_the_cohort(imported):
    code, root, patients, mapping = imported
    assert code == 0
    assert sorted(mapping) == sorted(p.patient_id for p in patients)
    assert {p.structure for p in patients} == {"RTSTRUCT", "SEG"}
    for path in (root / "cohort").rglob("*"):
        assert "PHANTOM" not in path.name
        if path.suffix in (".json", ".csv"):
            assert "PHANTOM" not in path.read_text() and "Phantom^" not in path.read_text()


def test_tumour_and_every_node_match_the_ground_truth(imported):
    _, root, patients, mapping = imported
    for patient in patients:
        case = root / "cohort" / "cases" / mapping[patient.patient_id]
        truth = patient.case
        assert _dice(_array(case / "tumor.nii.gz") > 0, sitk.GetArrayFromImage(truth.tumor) > 0) >= 0.95
        for key in ("gtv_ln", "lymph_nodes"):
            ours, theirs = _array(case / f"{key}.nii.gz"), sitk.GetArrayFromImage(getattr(truth, key))
            truth_ids = sorted(set(np.unique(theirs).tolist()) - {0})
            assert len(set(np.unique(ours).tolist()) - {0}) == len(truth_ids), (patient.patient_id, key)
            matched = set()
            for node in truth_ids:
                inside = theirs == node
                values, counts = np.unique(ours[inside], return_counts=True)
                best = int(values[np.argmax(counts)])
                assert best != 0 and best not in matched
                matched.add(best)
                assert _dice(inside, ours == best) >= 0.95, (patient.patient_id, key, node)
        candidates = list(csv.DictReader(open(case / "candidates.csv")))
        assert sum(int(r["label"]) for r in candidates) == len(set(np.unique(_array(case / "gtv_ln.nii.gz"))) - {0})
        info = json.loads((case / "patient.json").read_text())
        assert info["metastasis"] == truth.metastasis


def test_pet_is_the_phantom_suv_and_ct_its_hounsfield_units(imported):
    _, root, patients, mapping = imported
    for patient in patients:
        case = root / "cohort" / "cases" / mapping[patient.patient_id]
        pet, truth = sitk.ReadImage(str(case / "pet.nii.gz")), patient.case.pet
        assert np.allclose(pet.GetDirection(), truth.GetDirection(), atol=1e-6)
        assert np.allclose(pet.GetOrigin(), truth.GetOrigin(), atol=1e-4)
        difference = np.abs(sitk.GetArrayFromImage(pet) - sitk.GetArrayFromImage(truth)).max()
        assert difference <= 1e-4 * float(sitk.GetArrayFromImage(truth).max()) + 1e-6
        assert np.array_equal(_array(case / "ct.nii.gz"), sitk.GetArrayFromImage(patient.case.ct))


def test_check_accepts_every_stage_then_cls_trains_and_evaluates(imported, tmp_path):
    _, root, _, _ = imported
    cohort = root / "cohort"
    report = check_dataset(cohort)
    assert report.problems == []
    assert all(len(ids) == 6 for ids in report.trainable.values())
    assert main(["train", "cls", "--data", str(cohort), "--out", str(tmp_path / "cls"), "--config", "tiny",
                 "--epochs", "1"]) == 0
    assert main(["evaluate", "cls", "--data", str(cohort), "--model", str(tmp_path / "cls" / "cls_model.pt"),
                 "--split", "val", "--fold", "0", "--out", str(tmp_path / "eval.json")]) == 0
    metrics = json.loads((tmp_path / "eval.json").read_text())["metrics"]
    assert metrics["patients"] >= 1 and metrics["lesions"] >= 1  # seed 7: fold 0 holds a node-positive patient
    assert 0.0 <= metrics["mFROC"] <= 1.0


def test_phantom_dicom_command_and_a_patient_without_organ_folder(tmp_path, capsys):
    out = tmp_path / "export"
    assert main(["phantom", "--seed", "2", "--cases", "1", "--dicom", "--out", str(out)]) == 0
    manifest = json.loads((out / "phantom_export.json").read_text())
    patient = manifest["patients"][0]
    assert patient["contours"] == "RTSTRUCT" and patient["tumor_roi"] == "GTVp"
    assert (out / "organs" / patient["patient_id"] / "spleen.nii.gz").is_file()
    assert main(["phantom", "--seed", "2", "--cases", "1", "--dicom", "--out", str(out)]) == 2  # exists
    assert "already exists" in capsys.readouterr().err
    (tmp_path / "no_organs").mkdir()
    assert main(["dataset", "import", "--dicom", str(out / "dicom"), "--out", str(tmp_path / "cohort"),
                 "--organs-from", str(tmp_path / "no_organs")]) == 0
    assert "pt0001: note: no folder for this patient in --organs-from" in capsys.readouterr().out
    assert not (tmp_path / "cohort" / "cases" / "pt0001" / "organs.nii.gz").exists()
    assert json.loads((tmp_path / "cohort" / "dataset.json").read_text())["organ_labels"] == {}
