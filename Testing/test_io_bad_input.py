"""A table of malformed inputs: each gives one actionable error line, a non-zero exit, no traceback, no output.

Malformed files are made in tmp_path from the vendored data; Testing/Data is never modified.
"""

import gzip
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from LNStagingLib.cli import main
from option_names import unknown_options

IBSI = "ibsi_validation_sts"
RAW_PET = "mirp_sts_raw_pet/STS_001/FDG_PET/image"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bad(tmp_path_factory, data_dir):
    """Build every malformed input once; returns a dict name -> path (plus the good files they derive from)."""
    tmp = tmp_path_factory.mktemp("bad_inputs")
    pet_nifti = data_dir / IBSI / "nifti/STS_001/PET_image.nii.gz"
    pet = sitk.ReadImage(str(pet_nifti))
    made = {"pet_nifti": pet_nifti, "ct_nifti": data_dir / IBSI / "nifti/STS_001/CT_image.nii.gz",
            "missing": tmp / "does_not_exist.nii.gz"}

    (tmp / "not_an_image.nii.gz").write_bytes(gzip.compress(b"this is a text file, not an image\n" * 20))
    made["not_an_image"] = tmp / "not_an_image.nii.gz"
    data = pet_nifti.read_bytes()
    (tmp / "truncated.nii.gz").write_bytes(data[: len(data) // 2])
    made["truncated"] = tmp / "truncated.nii.gz"
    (tmp / "empty.nii.gz").write_bytes(b"")
    made["empty_file"] = tmp / "empty.nii.gz"

    def write(image, name):
        sitk.WriteImage(image, str(tmp / name))
        made[name.split(".")[0]] = tmp / name

    write(pet[:, :, 20], "pet_2d.nii.gz")
    write(sitk.JoinSeries([pet, pet]), "pet_4d.nii.gz")
    nan = sitk.Image(pet)
    nan[10, 10, 10] = float("nan")
    write(nan, "pet_nan.nii.gz")
    write(pet * 10000.0, "pet_bqml.nii.gz")
    far = sitk.Image(pet)
    far.SetOrigin(np.add(pet.GetOrigin(), (0, 0, 3000)).tolist())
    write(far, "pet_far.nii.gz")
    write(sitk.Compose(pet, pet, pet), "pet_rgb.nii.gz")
    ct = sitk.ReadImage(str(made["ct_nifti"]))
    write(sitk.Cast(ct + 1024.0, sitk.sitkUInt16), "ct_unrescaled.nii.gz")  # stored values, rescale not applied

    (tmp / "empty_dir").mkdir()
    made["empty_dir"] = tmp / "empty_dir"
    text_dir = tmp / "text_dir"
    text_dir.mkdir()
    (text_dir / "readme.txt").write_text("no DICOM here")
    made["text_dir"] = text_dir

    # Two PET series in one folder (links, not copies).
    two = tmp / "two_pet_series"
    for source in (data_dir / IBSI / "dicom/STS_001/PET/image", data_dir / RAW_PET):
        target = two / source.parent.parent.name / source.parent.name
        target.mkdir(parents=True)
        for f in sorted(source.iterdir())[:8]:
            os.symlink(f, target / f.name)
    made["two_pet_series"] = two

    # A short raw-PET series with a tag removed, one with a missing slice, one with a single slice.
    raw_files = sorted((data_dir / RAW_PET).iterdir())[100:112]

    def pet_subset(name, files, edit=None):
        folder = tmp / name
        folder.mkdir()
        for f in files:
            ds = pydicom.dcmread(f)
            if edit:
                edit(ds)
            ds.save_as(folder / f.name)
        made[name] = folder

    def no_dose(ds):
        del ds.RadiopharmaceuticalInformationSequence[0].RadionuclideTotalDose

    def no_weight(ds):
        del ds.PatientWeight

    pet_subset("pet_no_dose", raw_files, no_dose)
    pet_subset("pet_no_weight", raw_files, no_weight)
    pet_subset("pet_gap", raw_files[:5] + raw_files[6:])
    pet_subset("pet_one_slice", raw_files[:1])
    (tmp / "not_a_transform.tfm").write_text("hello\n")
    made["not_a_transform"] = tmp / "not_a_transform.tfm"
    return made


def D(data_dir, relative):
    return str(data_dir / relative)


# name, argv builder (bad, data_dir) -> list, expected words in the message
CASES = [
    ("missing file", lambda b, d: [str(b["missing"])], "does not exist"),
    ("not an image", lambda b, d: [str(b["not_an_image"])], "not an image"),
    ("truncated gzip", lambda b, d: [str(b["truncated"])], "truncated"),
    ("empty file", lambda b, d: [str(b["empty_file"])], "empty file"),
    ("2D image", lambda b, d: [str(b["pet_2d"])], "is 2D"),
    ("4D image", lambda b, d: [str(b["pet_4d"])], "is 4D"),
    ("colour image", lambda b, d: [str(b["pet_rgb"])], "values per voxel"),
    ("NaN in PET", lambda b, d: [str(b["pet_nan"])], "NaN"),
    ("PET file in Bq/ml", lambda b, d: [str(b["pet_bqml"])], "Bq/ml"),
    ("empty DICOM folder", lambda b, d: [str(b["empty_dir"])], "no DICOM image series"),
    ("folder without DICOM", lambda b, d: [str(b["text_dir"])], "no DICOM image series"),
    ("CT folder given as PET", lambda b, d: [D(d, "rt_utils_mock_data")], "no PT series"),
    ("two PET series, no choice", lambda b, d: [str(b["two_pet_series"])], "--series-uid"),
    ("PET without dose tag", lambda b, d: [str(b["pet_no_dose"])], "--dose-bq"),
    ("PET without weight tag", lambda b, d: [str(b["pet_no_weight"])], "--weight-kg"),
    ("dose given in MBq", lambda b, d: [str(b["pet_no_dose"]), "--dose-bq", "388"], "MBq"),
    ("missing slice in series", lambda b, d: [str(b["pet_gap"])], "slice file is probably missing"),
    ("single-slice series", lambda b, d: [str(b["pet_one_slice"])], "single slice"),
    ("PET and CT do not overlap", lambda b, d: [str(b["pet_far"]), "--ct", str(b["ct_nifti"])], "do not overlap"),
    ("different frame of reference",
     lambda b, d: [D(d, f"{IBSI}/dicom/STS_001/PET/image"), "--ct", D(d, f"{IBSI}/dicom/STS_002/CT/image")],
     "different frames of reference"),
    ("registration file is not a transform",
     lambda b, d: [str(b["pet_nifti"]), "--ct", str(b["ct_nifti"]), "--registration", str(b["not_a_transform"])],
     "not an ITK transform"),
    ("RTSTRUCT of another series",
     lambda b, d: [D(d, f"{IBSI}/dicom/STS_001/PET/image"), "--masks", D(d, f"{IBSI}/dicom/STS_002/PET/mask/RS.dcm")],
     "drawn on another image series"),
    ("label map on another grid",
     lambda b, d: [D(d, f"{IBSI}/dicom/STS_001/PET/image"), "--masks", D(d, f"{IBSI}/nifti/STS_001/CT_mask.nii.gz")],
     "not on the PET grid"),
    ("CT without the DICOM rescale",
     lambda b, d: [str(b["pet_nifti"]), "--ct", str(b["ct_unrescaled"])], "not Hounsfield units"),
    ("PET given as the CT",
     lambda b, d: [str(b["pet_nifti"]), "--ct", str(b["pet_nifti"])], "were not swapped"),
    ("mask is an image, not RTSTRUCT/SEG",
     lambda b, d: [D(d, f"{IBSI}/dicom/STS_001/PET/image"), "--masks", D(d, "rt_utils_mock_data/ct_1.dcm")],
     "not an RTSTRUCT"),
]


@pytest.mark.parametrize("name,argv,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_actionable_line(bad, data_dir, tmp_path, capsys, name, argv, expected):
    out = tmp_path / "out" / "pet_suv.nii.gz"
    code = main(["suv", *argv(bad, data_dir), "--out", str(out), "--stats-out", str(tmp_path / "out" / "stats.csv")])
    captured = capsys.readouterr()
    assert code != 0
    errors = [line for line in captured.err.splitlines() if "error:" in line]
    assert len(errors) == 1, captured.err
    assert errors[0].startswith("lnstaging suv: error: ")
    assert expected in errors[0]
    assert not unknown_options(["suv"], errors[0]), "the message names an option suv does not have"
    assert ":" in errors[0][len("lnstaging suv: error: "):]  # what is wrong: what to do
    assert "Traceback" not in captured.err + captured.out
    leftovers = list((tmp_path / "out").iterdir()) if (tmp_path / "out").exists() else []
    assert leftovers == []


@pytest.mark.parametrize("key,expected", [("truncated", "truncated"), ("pet_no_dose", "--dose-bq")])
def test_bad_input_in_a_real_process(bad, tmp_path, key, expected):
    out = tmp_path / "pet_suv.nii.gz"
    result = subprocess.run([sys.executable, "-m", "LNStagingLib.cli", "suv", str(bad[key]), "--out", str(out)],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert not out.exists() and not list(tmp_path.glob(".pet_suv*"))


def test_supplied_dose_fixes_the_missing_tag(bad, tmp_path, capsys):
    out = tmp_path / "pet_suv.nii.gz"
    assert main(["suv", str(bad["pet_no_dose"]), "--dose-bq", "3.88777472e8", "--out", str(out)]) == 0
    assert "0.00024290298" in capsys.readouterr().out
    assert sitk.ReadImage(str(out)).GetSize() == (128, 128, 12)
