"""``lnstaging dataset import`` on the four real IBSI soft-tissue-sarcoma PET/CT patients (DICOM CT, PET in SUV
(Units GML) and one RTSTRUCT per series): tumour masks against the IBSI NIfTI masks, PET against ``lnstaging suv``."""

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk

from LNStagingLib.cli import main
from LNStagingLib.dataset.check import check_dataset

PATIENTS = ("STS_001", "STS_002", "STS_008", "STS_025")


@pytest.fixture(scope="module")
def imported(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("ibsi")
    out = root / "cohort"
    code = main(["dataset", "import", "--dicom", str(data_dir / "ibsi_validation_sts" / "dicom"), "--out", str(out)])
    with open(root / "cohort_patient_ids.csv") as handle:
        mapping = {row["patient_id"]: row["case_id"] for row in csv.DictReader(handle)}
    return code, out, mapping


def _array(path):
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_every_patient_is_imported_under_a_pseudonym(imported):
    code, out, mapping = imported
    assert code == 0
    assert sorted(mapping) == list(PATIENTS)
    description = (out / "dataset.json").read_text()
    assert sorted(json.loads(description)["cases"]) == sorted(mapping.values())
    for path in out.rglob("*"):  # no PatientID in names or contents of the cohort
        assert "STS" not in path.name
        if path.suffix == ".json":
            assert "STS" not in path.read_text()


@pytest.mark.parametrize("patient", PATIENTS)
def test_tumour_mask_matches_the_ibsi_nifti_mask(imported, data_dir, patient):
    _, out, mapping = imported
    case = out / "cases" / mapping[patient]
    reference = sitk.ReadImage(str(data_dir / "ibsi_validation_sts" / "nifti" / patient / "CT_mask.nii.gz"))
    tumor = sitk.ReadImage(str(case / "tumor.nii.gz"))
    assert tumor.GetSize() == reference.GetSize()
    assert np.allclose(tumor.GetOrigin(), reference.GetOrigin(), atol=1e-3)
    a, b = sitk.GetArrayFromImage(tumor) > 0, sitk.GetArrayFromImage(reference) > 0
    dice = 2 * np.sum(a & b) / (a.sum() + b.sum())
    assert dice >= 0.95, dice
    assert sitk.ReadImage(str(case / "ct.nii.gz")).GetPixelID() == sitk.sitkInt16
    assert not np.any(_array(case / "gtv_ln.nii.gz"))
    patient_json = json.loads((case / "patient.json").read_text())
    assert patient_json["metastasis"] == 0 and patient_json["pet_units"] == "GML"


def test_pet_equals_lnstaging_suv_of_the_same_series(imported, data_dir, tmp_path, capsys):
    _, out, mapping = imported
    for patient in ("STS_001", "STS_025"):
        suv_file = tmp_path / f"{patient}.nii.gz"
        assert main(["suv", str(data_dir / "ibsi_validation_sts" / "dicom" / patient / "PET" / "image"),
                     "--out", str(suv_file)]) == 0
        assert "already SUVbw (Units GML)" in capsys.readouterr().out
        ours = sitk.ReadImage(str(out / "cases" / mapping[patient] / "pet.nii.gz"))
        theirs = sitk.ReadImage(str(suv_file))
        assert ours.GetSize() == theirs.GetSize() and ours.GetOrigin() == theirs.GetOrigin()
        assert np.array_equal(sitk.GetArrayFromImage(ours), sitk.GetArrayFromImage(theirs))
    summary = json.loads((out.parent / "cohort_import_summary.json").read_text())
    assert all("not converted again" in " ".join(notes) for notes in summary["notes"].values())


def test_check_accepts_the_stages_the_contents_allow(imported):
    _, out, _ = imported
    report = check_dataset(out)
    assert report.problems == []
    assert len(report.trainable["patient"]) == 4  # node-negative patients with a primary: the patient stage
    assert report.trainable["cls"] == [] and report.trainable["seg"] == []  # no candidates, no organ masks
    assert "lacks candidates.csv" in report.stage_lines()[1]


def test_a_second_run_skips_finished_cases_and_keeps_the_ids(imported, data_dir, capsys):
    _, out, mapping = imported
    before = (out / "cases" / mapping["STS_002"] / "tumor.nii.gz").stat().st_mtime_ns
    assert main(["dataset", "import", "--dicom", str(data_dir / "ibsi_validation_sts" / "dicom"), "--out", str(out)]) == 0
    assert "4 already imported (skipped), 0 to import" in capsys.readouterr().out
    assert (out / "cases" / mapping["STS_002"] / "tumor.nii.gz").stat().st_mtime_ns == before
    with open(out.parent / "cohort_patient_ids.csv") as handle:
        assert {row["patient_id"]: row["case_id"] for row in csv.DictReader(handle)} == mapping


def test_a_dicomdir_export_is_read(data_dir, tmp_path):
    """STS_002 rewritten as a DICOMDIR file set (PT000000/ST000000/SE000000/IM... files without extension)."""
    import warnings

    import pydicom
    from pydicom.fileset import FileSet

    file_set = FileSet()
    for path in sorted((data_dir / "ibsi_validation_sts" / "dicom" / "STS_002").rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        if "InstanceNumber" not in ds:  # the DICOMDIR record of an RTSTRUCT needs one
            ds.InstanceNumber = 1
        file_set.add(ds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        file_set.write(tmp_path / "export")
    assert main(["dataset", "import", "--dicom", str(tmp_path / "export" / "DICOMDIR"), "--out",
                 str(tmp_path / "cohort")]) == 0
    tumor = _array(tmp_path / "cohort" / "cases" / "pt0001" / "tumor.nii.gz") > 0
    reference = _array(data_dir / "ibsi_validation_sts" / "nifti" / "STS_002" / "CT_mask.nii.gz") > 0
    assert 2 * np.sum(tumor & reference) / (tumor.sum() + reference.sum()) >= 0.95


def test_labels_csv_must_agree_with_the_contours(data_dir, tmp_path, capsys):
    labels = tmp_path / "labels.csv"
    labels.write_text("patient_id,metastasis\nSTS_001,1\nSTS_002,0\n")
    code = main(["dataset", "import", "--dicom", str(data_dir / "ibsi_validation_sts" / "dicom"), "--out",
                 str(tmp_path / "cohort"), "--labels", str(labels)])
    assert code == 1
    with open(tmp_path / "cohort_patient_ids.csv") as handle:
        mapping = {row["patient_id"]: row["case_id"] for row in csv.DictReader(handle)}
    out = capsys.readouterr().out
    assert f"{mapping['STS_001']}: --labels says metastasis 1 but the structure set has 0 GTVn ROI(s)" in out
    cases = json.loads((tmp_path / "cohort" / "dataset.json").read_text())["cases"]
    assert sorted(cases) == sorted(mapping[p] for p in ("STS_002", "STS_008", "STS_025"))
    info = json.loads((tmp_path / "cohort" / "cases" / mapping["STS_002"] / "patient.json").read_text())
    assert info["metastasis"] == 0 and info["metastasis_from"] == "--labels"


def test_an_export_holding_a_patient_twice_gives_one_case(data_dir, tmp_path):
    import shutil

    for copy in ("first_export", "second_export"):
        shutil.copytree(data_dir / "ibsi_validation_sts" / "dicom" / "STS_002", tmp_path / "export" / copy)
    assert main(["dataset", "import", "--dicom", str(tmp_path / "export"), "--out", str(tmp_path / "cohort")]) == 0
    assert json.loads((tmp_path / "cohort" / "dataset.json").read_text())["cases"] == ["pt0001"]
    tumor = _array(tmp_path / "cohort" / "cases" / "pt0001" / "tumor.nii.gz") > 0
    reference = _array(data_dir / "ibsi_validation_sts" / "nifti" / "STS_002" / "CT_mask.nii.gz") > 0
    assert np.array_equal(tumor, reference)
