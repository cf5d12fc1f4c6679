"""DICOM series, RTSTRUCT and SEG readers on real data, with the oracles from Testing/Data/SOURCES.md."""

import functools

import numpy as np
import pytest
import SimpleITK as sitk

from LNStagingLib.errors import DicomError, InputFileError
from LNStagingLib.io.dicom_series import list_series, read_dicom_series
from LNStagingLib.io.images import read_image
from LNStagingLib.io.resample import isotropic_grid, resample_to_reference, same_grid
from LNStagingLib.io.rtstruct_read import fill_contours, read_rtstruct
from LNStagingLib.io.seg_read import read_seg

IBSI = "ibsi_validation_sts"


@functools.lru_cache(maxsize=None)
def series(path):
    """Each real series is read once per test module (read-only use)."""
    return read_dicom_series(path)


def dice(a: sitk.Image, b: sitk.Image) -> float:
    x, y = sitk.GetArrayViewFromImage(a) > 0, sitk.GetArrayViewFromImage(b) > 0
    return 2.0 * np.logical_and(x, y).sum() / (x.sum() + y.sum())


def test_jpeg2000_ct_series_loads_in_slice_order(data_dir):
    ct = read_dicom_series(data_dir / "totalsegmentator/example_ct_dicom")
    image = ct.image
    assert image.GetSize() == (512, 512, 20)
    assert image.GetSpacing() == pytest.approx((0.9765625, 0.9765625, 2.0))
    values = sitk.GetArrayViewFromImage(image)
    assert values.min() == -1024 and values.max() > 1000  # decoded HU, not zeros
    assert len(set(ct.sop_instance_uids)) == 20 and ct.files[0].name.endswith(ct.sop_instance_uids[0])
    z = [float(h.ImagePositionPatient[2]) for h in ct.headers]
    assert z == sorted(z) and z[0] == pytest.approx(image.GetOrigin()[2])
    # The label map shipped for this series (LAS on disk) lines up voxel for voxel after reorientation.
    labels = sitk.DICOMOrient(sitk.ReadImage(str(data_dir / "totalsegmentator/example_seg_dicom.nii.gz")), "LPS")
    assert same_grid(labels, image)


def test_folder_with_ct_and_pet_lists_both_and_picks_by_modality(data_dir):
    folder = data_dir / IBSI / "dicom/STS_001"
    found = list_series(folder)
    assert sorted(s.modality for s in found) == ["CT", "PT"]  # RTSTRUCTs are not image series
    ct = read_dicom_series(folder, modality="CT")
    pet = read_dicom_series(folder, modality="PET")
    assert ct.frame_of_reference_uid == pet.frame_of_reference_uid
    assert ct.image.GetSize() == (198, 202, 59) and pet.image.GetSize() == (41, 43, 59)
    assert read_dicom_series(folder, series_uid=pet.series_instance_uid).modality == "PT"
    with pytest.raises(DicomError, match="SeriesInstanceUID"):
        read_dicom_series(folder)
    with pytest.raises(DicomError, match="no MR series"):
        read_dicom_series(folder, modality="MR")


def test_series_headers_parsed_once_equal_a_second_parse(data_dir, monkeypatch):
    """read_series uses the headers the folder scan read (no second pydicom parse per file): same image, slice order
    and headers as reading every file again."""
    import dataclasses

    import pydicom

    from LNStagingLib.io import dicom_series

    folder = data_dir / IBSI / "dicom/STS_001"
    info = dicom_series.choose_series(list_series(folder), folder, modality="PT")
    again = dicom_series.read_series(dataclasses.replace(info, headers=None))
    calls = []
    original = pydicom.dcmread
    monkeypatch.setattr(dicom_series.pydicom, "dcmread", lambda *a, **k: calls.append(a) or original(*a, **k))
    once = dicom_series.read_series(info)
    assert calls == []
    assert np.array_equal(sitk.GetArrayViewFromImage(once.image), sitk.GetArrayViewFromImage(again.image))
    assert once.sop_instance_uids == again.sop_instance_uids and once.headers == again.headers


def test_dicom_and_nifti_of_the_same_ct_agree(data_dir):
    dicom = read_image(data_dir / IBSI / "dicom/STS_001/CT/image")
    nifti = read_image(data_dir / IBSI / "nifti/STS_001/CT_image.nii.gz")
    assert same_grid(dicom, nifti, tolerance=1e-3)
    assert np.array_equal(sitk.GetArrayViewFromImage(dicom), sitk.GetArrayViewFromImage(nifti))


@pytest.mark.parametrize("patient", ["STS_001", "STS_002"])
@pytest.mark.parametrize("modality", ["CT", "PET"])
def test_ibsi_rtstruct_rasterises_to_shipped_mask(data_dir, patient, modality):
    reference = series(data_dir / IBSI / f"dicom/{patient}/{modality}/image")
    masks = read_rtstruct(data_dir / IBSI / f"dicom/{patient}/{modality}/mask/RS.dcm", reference)
    assert list(masks) == [f"GTV_Mass_{modality}"]
    expected = sitk.ReadImage(str(data_dir / IBSI / f"nifti/{patient}/{modality}_mask.nii.gz"))
    mask = masks[f"GTV_Mass_{modality}"]
    assert same_grid(mask, expected)
    assert dice(mask, expected) >= 0.98  # measured: 1.000 for all four


def test_ct_rtstruct_on_pet_grid_and_on_1mm_grid(data_dir):
    """Same frame of reference, other series: accepted; off-slice planes go through the intermediate grid."""
    ct = series(data_dir / IBSI / "dicom/STS_001/CT/image")
    pet = series(data_dir / IBSI / "dicom/STS_001/PET/image")
    rs = data_dir / IBSI / "dicom/STS_001/CT/mask/RS.dcm"
    on_ct = read_rtstruct(rs, ct)["GTV_Mass_CT"]
    on_pet = read_rtstruct(rs, pet)["GTV_Mass_CT"]
    pet_mask = sitk.ReadImage(str(data_dir / IBSI / "nifti/STS_001/PET_mask.nii.gz"))
    assert dice(on_pet, pet_mask) > 0.9  # two delineations of one tumour
    grid = isotropic_grid(ct.image, 1.0)
    shifted = sitk.Image(grid)
    shifted.SetOrigin(grid.TransformContinuousIndexToPhysicalPoint((0, 0, 0.4)))  # planes between contour slices
    fine = read_rtstruct(rs, shifted)["GTV_Mass_CT"]
    volume = lambda m: sitk.GetArrayViewFromImage(m).sum() * np.prod(m.GetSpacing())
    assert volume(fine) == pytest.approx(volume(on_ct), rel=0.01)
    assert dice(fine, resample_to_reference(on_ct, shifted, "nearest")) > 0.99


def test_rtstruct_on_flipped_reference_is_the_flipped_mask(data_dir):
    ct = series(data_dir / IBSI / "dicom/STS_001/CT/image")
    rs = data_dir / IBSI / "dicom/STS_001/CT/mask/RS.dcm"
    lps = read_rtstruct(rs, ct)["GTV_Mass_CT"]
    ras_reference = sitk.DICOMOrient(ct.image, "RAS")
    assert ras_reference.GetDirection() == (-1, 0, 0, 0, -1, 0, 0, 0, 1)
    ras = read_rtstruct(rs, ras_reference)["GTV_Mass_CT"]
    assert np.array_equal(sitk.GetArrayViewFromImage(ras), sitk.GetArrayFromImage(sitk.DICOMOrient(lps, "RAS")))


def test_nested_contours_make_a_hole_on_a_flipped_3mm_grid(data_dir):
    grid = read_image(data_dir / "totalsegmentator/example_ct.nii.gz")
    assert grid.GetDirection() == (-1, 0, 0, 0, -1, 0, 0, 0, 1)
    centre = np.array(grid.TransformIndexToPhysicalPoint((60, 50, 40)))

    def square(half):
        corners = [(-half, -half), (half, -half), (half, half), (-half, half)]
        return np.array([[centre[0] + x, centre[1] + y, centre[2]] for x, y in corners])

    mask, off = fill_contours(grid, [square(31.5), square(13.5)])
    assert off == []
    ring = mask[40]
    assert ring[50, 60] == 0 and ring[50, 60 + 7] == 1 and ring[50, 60 + 11] == 0  # hole, ring, outside
    # edges between voxel centres: 21x21 voxel centres inside the 63 mm square, 9x9 in the 27 mm hole.
    assert ring.sum() == 21 * 21 - 9 * 9


def test_rt_utils_mock_rtstructs(data_dir):
    folder = data_dir / "rt_utils_mock_data"
    ct = read_dicom_series(folder)
    assert ct.image.GetSize() == (512, 512, 2)
    good = read_rtstruct(folder / "rt.dcm", ct)
    assert sitk.GetArrayViewFromImage(good["ROI-1"]).sum() > 0
    for broken in ("invalid_reference_rt.dcm", "non_existent_reference_rt.dcm"):
        with pytest.raises(DicomError, match="slices the image series does not have"):
            read_rtstruct(folder / broken, ct)
    with pytest.raises(InputFileError, match="not an RTSTRUCT"):
        read_rtstruct(folder / "ct_1.dcm", ct)


def test_rtstruct_of_another_patient_is_refused(data_dir):
    ct = series(data_dir / IBSI / "dicom/STS_001/CT/image")
    with pytest.raises(DicomError, match="drawn on another image series"):
        read_rtstruct(data_dir / IBSI / "dicom/STS_002/CT/mask/RS.dcm", ct)


def test_qin_headneck_seg_segments(data_dir):
    seg = read_seg(data_dir / "mirp_qin_headneck_0139/mask/mask.dcm")
    counts = np.bincount(sitk.GetArrayViewFromImage(seg.label_map).ravel(), minlength=12)[1:12]
    assert counts.tolist() == [1697, 113, 457, 4230, 211, 375, 922, 950, 222, 43, 62]
    assert [s.type.meaning for s in seg.segments] == ["Neoplasm, Primary"] + ["Neoplasm, Secondary"] * 10
    assert all(s.anatomic_region.meaning == "lymph node of head and neck" for s in seg.segments[1:])
    assert seg.segments[0].category.meaning == "Morphologically Altered Structure"
    assert seg.label_map.GetSpacing() == pytest.approx((3.394027, 3.394027, 2.024902))
    # On a 2x finer reference grid each segment keeps its volume (nearest neighbour, 8 children per voxel).
    fine = sitk.Image([336, 336, 142], sitk.sitkUInt8)
    fine.SetSpacing([s / 2 for s in seg.label_map.GetSpacing()])
    fine.SetOrigin(seg.label_map.TransformContinuousIndexToPhysicalPoint((-0.25, -0.25, -0.25)))
    resampled = read_seg(data_dir / "mirp_qin_headneck_0139/mask/mask.dcm", fine)
    fine_counts = np.bincount(sitk.GetArrayViewFromImage(resampled.label_map).ravel(), minlength=12)[1:12]
    assert fine_counts.tolist() == (counts * 8).tolist()
