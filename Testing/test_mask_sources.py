"""--tumor and --organs take what radiation oncologists keep: a DICOM RTSTRUCT ROI or a DICOM SEG segment, as well as
a label map. One resolution (io.mask_source) for every command; errors name the file."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from LNStagingLib.anatomy.structures import read_organs
from LNStagingLib.cli import main
from LNStagingLib.errors import InputFileError
from LNStagingLib.io.dicom_series import read_dicom_series
from LNStagingLib.io.mask_source import read_mask, read_named_labels
from LNStagingLib.io.seg_read import read_seg

DATA = Path(__file__).parent / "Data"
STS = DATA / "ibsi_validation_sts"
CT_DICOM = STS / "dicom" / "STS_001" / "CT" / "image"
RS = STS / "dicom" / "STS_001" / "CT" / "mask" / "RS.dcm"
RS_MASK_NIFTI = STS / "nifti" / "STS_001" / "CT_mask.nii.gz"  # IBSI's rasterisation of RS.dcm
RAW_PET_RS = DATA / "mirp_sts_raw_pet" / "STS_001" / "FDG_PET" / "mask" / "1-1.dcm"  # GTV_Mass + GTV_Edema
QIN_SEG = DATA / "mirp_qin_headneck_0139" / "mask" / "mask.dcm"  # 11 segments: 1 primary, 10 nodes


@pytest.fixture(scope="module")
def ct_series():
    return read_dicom_series(CT_DICOM, what="CT")


def _centroid_mm(mask: sitk.Image) -> np.ndarray:
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(sitk.Cast(mask, sitk.sitkUInt8))
    return np.array(stats.GetCentroid(1))


def test_rtstruct_roi_matches_the_nifti_rasterisation(ct_series):
    from_rs = read_mask(RS, ct_series, roi="GTV_Mass_CT")
    reference = sitk.ReadImage(str(RS_MASK_NIFTI))
    a = sitk.GetArrayViewFromImage(from_rs) > 0
    b = sitk.GetArrayFromImage(sitk.Resample(reference, from_rs, sitk.Transform(), sitk.sitkNearestNeighbor)) > 0
    assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.95
    spacing = np.array(from_rs.GetSpacing())
    assert np.all(np.abs(_centroid_mm(from_rs) - _centroid_mm(reference)) <= spacing)
    # the only ROI is taken without naming it
    assert np.array_equal(sitk.GetArrayFromImage(read_mask(RS, ct_series)), a.astype(np.uint8))


def test_choices_inside_rtstruct_and_seg_and_errors_name_the_file(ct_series):
    with pytest.raises(InputFileError, match=r"RS\.dcm' has no ROI named 'GTVp' \(it has: GTV_Mass_CT\)"):
        read_mask(RS, ct_series, roi="GTVp")
    pet = read_dicom_series(DATA / "mirp_sts_raw_pet" / "STS_001" / "FDG_PET" / "image", what="PET")
    with pytest.raises(InputFileError, match=r"1-1\.dcm' holds 2 ROIs \(GTV_Mass, GTV_Edema\).*--tumor-roi"):
        read_mask(RAW_PET_RS, pet)  # two GTV ROIs: the user must choose
    assert sitk.GetArrayFromImage(read_mask(RAW_PET_RS, pet, roi="GTV_Mass")).sum() > 0
    own_grid = read_seg(QIN_SEG).label_map
    primary = read_mask(QIN_SEG, own_grid)  # the only "Neoplasm, Primary" segment
    assert np.array_equal(sitk.GetArrayViewFromImage(primary), (sitk.GetArrayViewFromImage(own_grid) == 1).astype(np.uint8))
    node = read_mask(QIN_SEG, own_grid, segment="3")
    assert np.array_equal(sitk.GetArrayViewFromImage(node), (sitk.GetArrayViewFromImage(own_grid) == 3).astype(np.uint8))
    with pytest.raises(InputFileError, match=r"mask\.dcm' several segments are labelled 'Neoplasm, Secondary'"):
        read_mask(QIN_SEG, own_grid, segment="Neoplasm, Secondary")
    with pytest.raises(InputFileError, match=r"000000\.dcm' is a DICOM CT file, not a mask"):
        read_mask(CT_DICOM / "000000.dcm", ct_series)
    with pytest.raises(InputFileError, match=r"CT_mask\.nii\.gz' is a label map"):
        read_mask(RS_MASK_NIFTI, ct_series, roi="GTV_Mass_CT")


def test_organs_from_rtstruct_and_seg_keep_their_names(ct_series):
    organs = read_organs(RS, reference=ct_series)
    assert organs.names == {1: "GTV_Mass_CT"} and organs.from_files
    labels, names = read_named_labels(QIN_SEG, read_seg(QIN_SEG).label_map, names=["Neoplasm, Primary"])
    assert names == {1: "Neoplasm, Primary"} and set(np.unique(sitk.GetArrayViewFromImage(labels))) == {0, 1}
    with pytest.raises(InputFileError, match=r"RS\.dcm' has no ROI named 'liver'"):
        read_organs(RS, reference=ct_series, rois=["liver"])


def _priors(out: Path) -> dict:
    return {c["id"]: c["priors"] for c in json.loads((out / "candidates.json").read_text())["candidates"]}


@pytest.mark.slow
def test_run_with_rtstruct_tumor_gives_the_priors_of_the_nifti_mask(ct_series, tmp_path):
    """The issue's acceptance: `lnstaging run --tumor RS.dcm --tumor-roi GTV_Mass_CT` on the sarcoma CT."""
    ct = ct_series.image
    centre = np.array(ct.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in ct.GetSize()]))
    points = [centre + offset for offset in ([40, 0, 0], [-30, 25, 10], [0, -45, -20])]
    with open(tmp_path / "candidates.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["x", "y", "z", "radius_mm"])
        writer.writerows([[*p, 6] for p in points])
    common = ["run", "--ct", str(CT_DICOM), "--pet", str(STS / "nifti" / "STS_001" / "PET_image.nii.gz"),
              "--candidates", str(tmp_path / "candidates.csv"), "--models", "none"]
    assert main([*common, "--tumor", str(RS), "--tumor-roi", "GTV_Mass_CT", "--out", str(tmp_path / "rs")]) == 0
    assert main([*common, "--tumor", str(RS_MASK_NIFTI), "--out", str(tmp_path / "nifti")]) == 0
    from_rs, from_nifti = _priors(tmp_path / "rs"), _priors(tmp_path / "nifti")
    assert len(from_rs) == 3 and from_rs.keys() == from_nifti.keys()
    voxel = max(ct.GetSpacing())
    tumour_centre = _centroid_mm(sitk.ReadImage(str(RS_MASK_NIFTI)))
    for key, point in zip(sorted(from_rs), points):
        a, b = from_rs[key], from_nifti[key]
        assert a["tumor_distance_mm"] == pytest.approx(b["tumor_distance_mm"], abs=voxel), key
        # the tumour centre may move by up to one voxel: the direction to the candidate turns by at most this
        turn = np.degrees(np.arctan2(voxel, np.linalg.norm(point - tumour_centre) - voxel))
        for angle in ("tumor_elevation_deg", "tumor_azimuth_deg"):
            assert abs(a[angle] - b[angle]) <= turn, (key, angle, a[angle], b[angle], turn)
