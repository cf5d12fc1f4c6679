"""Real RTSTRUCT, SEG and PET changed the way archives and planning systems change them (issue 25 items 5, 6, 14,
17): ROIs sharing a name, NaN contour coordinates, a fractional SEG, a PET without positive uptake. Each is read
right or refused with one InputFileError/DicomError line, and the real files are left as they were."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from LNStagingLib.errors import DicomError, InputFileError
from LNStagingLib.io.dicom_series import read_dicom_series
from LNStagingLib.io.mask_source import read_mask, read_named_labels
from LNStagingLib.io.rtstruct_read import read_rtstruct

DATA = Path(__file__).parent / "Data"
RAW_PET = DATA / "mirp_sts_raw_pet/STS_001/FDG_PET/image"
RAW_PET_RS = DATA / "mirp_sts_raw_pet/STS_001/FDG_PET/mask/1-1.dcm"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def pet():
    return read_dicom_series(RAW_PET, what="PET")


@pytest.fixture(scope="module")
def originals(pet):
    """GTV_Mass and GTV_Edema of the real RTSTRUCT on the real PET, each read on its own."""
    return read_rtstruct(RAW_PET_RS, pet)


def _with_names(tmp_path: Path, names: dict[int, str], copy_of: int | None = None) -> Path:
    """The real RTSTRUCT with ROIs renamed (number -> name) and optionally a byte-identical copy of one ROI added
    under number 3 with the same name (what a planning system's 'duplicate structure' writes)."""
    ds = pydicom.dcmread(RAW_PET_RS)
    for item in ds.StructureSetROISequence:
        item.ROIName = names.get(int(item.ROINumber), item.ROIName)
    if copy_of is not None:
        for sequence, key in (("StructureSetROISequence", "ROINumber"), ("ROIContourSequence", "ReferencedROINumber"),
                              ("RTROIObservationsSequence", "ReferencedROINumber")):
            items = getattr(ds, sequence)
            twin = copy.deepcopy(next(i for i in items if int(getattr(i, key)) == copy_of))
            setattr(twin, key, 3)
            if sequence == "RTROIObservationsSequence":
                twin.ObservationNumber = 3
            items.append(twin)
    out = tmp_path / "RS_duplicate.dcm"
    ds.save_as(out)
    return out


def test_two_rois_with_one_name_are_refused_and_chosen_by_number(pet, originals, tmp_path):
    before = _digest(RAW_PET_RS)
    rs = _with_names(tmp_path, {2: "GTV_Mass"})  # GTV_Edema renamed: two different ROIs named GTV_Mass
    with pytest.raises(InputFileError, match=r"has 2 ROIs named 'GTV_Mass' \(numbers 1, 2\): choose one by number "
                                             r"with --tumor-roi NUMBER \(ROIs: 1 GTV_Mass, 2 GTV_Mass\)"):
        read_mask(rs, pet, roi="GTV_Mass")
    with pytest.raises(InputFileError, match=r"holds 2 ROIs \(1 GTV_Mass, 2 GTV_Mass\).*--tumor-roi NAME_OR_NUMBER"):
        read_mask(rs, pet)
    for number, name in ((1, "GTV_Mass"), (2, "GTV_Edema")):  # by number: exactly that ROI, never an XOR of both
        chosen = read_mask(rs, pet, roi=str(number))
        assert np.array_equal(sitk.GetArrayViewFromImage(chosen), sitk.GetArrayViewFromImage(originals[name]))
    every = read_rtstruct(rs, pet)
    assert sorted(every) == ["GTV_Mass (ROI 1)", "GTV_Mass (ROI 2)"]
    with pytest.raises(InputFileError, match=r"2 ROIs named 'GTV_Mass'.*--organs-roi NUMBER"):
        read_named_labels(rs, pet, roi_option="--organs-roi")
    with pytest.raises(InputFileError, match=r"2 ROIs named 'GTV_Mass'.*rename them in the planning system"):
        read_named_labels(rs, pet)  # a command without an ROI choice (candidates --organs) names no option
    labels, names = read_named_labels(rs, pet, names=["2"])
    assert names == {1: "GTV_Mass"} and int(sitk.GetArrayViewFromImage(labels).sum()) == \
        int(sitk.GetArrayViewFromImage(originals["GTV_Edema"]).sum())
    with pytest.raises(InputFileError, match=r"has no ROI named or numbered '7' \(it has: 1 GTV_Mass, 2 GTV_Mass\)"):
        read_mask(rs, pet, roi="7")
    assert _digest(RAW_PET_RS) == before


def test_an_identical_duplicate_roi_is_not_read_as_empty(pet, originals, tmp_path):
    rs = _with_names(tmp_path, {}, copy_of=1)  # ROI 3: a copy of GTV_Mass, same name, same contours
    with pytest.raises(InputFileError, match=r"has 2 ROIs named 'GTV_Mass' \(numbers 1, 3\)"):
        read_mask(rs, pet, roi="GTV_Mass")
    third = read_mask(rs, pet, roi="3")
    assert sitk.GetArrayViewFromImage(third).sum() > 0
    assert np.array_equal(sitk.GetArrayViewFromImage(third), sitk.GetArrayViewFromImage(originals["GTV_Mass"]))


@pytest.mark.parametrize("value", ["NaN", "inf"])
def test_nan_in_contour_data_is_refused(pet, tmp_path, value):
    before = _digest(RAW_PET_RS)
    ds = pydicom.dcmread(RAW_PET_RS)
    contour = ds.ROIContourSequence[0].ContourSequence[5]
    data = list(contour.ContourData)
    data[4] = value
    contour.ContourData = data
    rs = tmp_path / "RS_nan.dcm"
    ds.save_as(rs)
    with pytest.raises(DicomError, match=r"ROI 'GTV_Mass' has coordinates that are not numbers \(NaN or infinite "
                                         r"ContourData\)"):
        read_mask(rs, pet, roi="GTV_Mass")
    assert read_mask(rs, pet, roi="GTV_Edema") is not None  # the other ROI is intact and still readable
    assert _digest(RAW_PET_RS) == before


def _pet_with_values(tmp_path: Path, make) -> Path:
    """12 slices of the real raw PET (real tags) whose stored pixels are replaced by make(pixels)."""
    out = tmp_path / "pet"
    out.mkdir()
    for path in sorted(RAW_PET.iterdir())[100:112]:
        ds = pydicom.dcmread(path)
        pixels = make(ds.pixel_array.astype(np.int32))
        assert ds.BitsAllocated == 16
        ds.PixelRepresentation = 1  # signed, so that negative values can be stored
        ds.PixelData = pixels.astype(np.int16).tobytes()
        ds.RescaleSlope = 1.0  # one slope for every slice (the real ones differ per slice)
        ds.save_as(out / path.name)
    return out


@pytest.mark.parametrize("kind, make, expected", [
    ("all zero", lambda p: np.zeros_like(p), "has no positive uptake"),
    ("all negative", lambda p: -1 - np.abs(p) % 100, "has no positive uptake"),
    ("constant", lambda p: np.full_like(p, 1000), "has the same value"),
    ("real values (accepted)", lambda p: np.clip(p, 0, 32767), None),
])
def test_pet_without_positive_uptake_is_refused(tmp_path, capsys, kind, make, expected):
    from LNStagingLib.cli import main
    from LNStagingLib.io.petct import load_pet_suv

    folder = _pet_with_values(tmp_path, make)
    if expected is None:  # the same slices with their real values: accepted (the check does not refuse a real PET)
        assert float(sitk.GetArrayViewFromImage(load_pet_suv(folder)[0]).max()) > 1.0
        return
    with pytest.raises(Exception, match=expected):
        load_pet_suv(folder)
    before = {p.name: _digest(p) for p in folder.iterdir()}
    assert main(["candidates", "--pet", str(folder), "--out", str(tmp_path / "c.csv")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and expected in err[0], err
    assert not (tmp_path / "c.csv").exists()
    assert {p.name: _digest(p) for p in folder.iterdir()} == before


QIN_SEG = DATA / "mirp_qin_headneck_0139/mask/mask.dcm"


def fractional_seg(target: Path) -> Path:
    """The real binary QIN SEG written as a FRACTIONAL (probability, 8-bit) SEG: inside voxels 128/255 (just above
    half), a one-voxel rim outside them 127/255 (just below half), everything else 0."""
    from scipy.ndimage import binary_dilation

    ds = pydicom.dcmread(QIN_SEG)
    inside = ds.pixel_array.astype(bool).reshape(int(ds.NumberOfFrames), ds.Rows, ds.Columns)
    rim = np.stack([binary_dilation(frame) & ~frame for frame in inside])
    fractions = np.where(inside, 128, np.where(rim, 127, 0)).astype(np.uint8)
    ds.SegmentationType = "FRACTIONAL"
    ds.SegmentationFractionalType = "PROBABILITY"
    ds.MaximumFractionalValue = 255
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = fractions.tobytes()
    ds.save_as(target)
    return target


def test_fractional_seg_is_thresholded_at_one_half(tmp_path):
    from LNStagingLib.io.seg_read import FRACTION_THRESHOLD, read_seg

    before = _digest(QIN_SEG)
    assert FRACTION_THRESHOLD == 0.5
    binary = read_seg(QIN_SEG)
    fractional = read_seg(fractional_seg(tmp_path / "fractional.dcm"))
    assert [s.name for s in fractional.segments] == [s.name for s in binary.segments]
    assert fractional.label_map.GetSize() == binary.label_map.GetSize()
    assert np.allclose(fractional.label_map.GetOrigin(), binary.label_map.GetOrigin())
    expected = sitk.GetArrayViewFromImage(binary.label_map)
    assert np.array_equal(sitk.GetArrayViewFromImage(fractional.label_map), expected)
    assert len(np.unique(expected)) == 12  # background and the 11 segments
    primary = read_mask(tmp_path / "fractional.dcm", binary.label_map)
    assert np.array_equal(sitk.GetArrayViewFromImage(primary), (expected == 1).astype(np.uint8))
    assert _digest(QIN_SEG) == before
