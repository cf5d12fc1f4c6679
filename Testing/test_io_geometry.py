"""Grids, resampling and PET/CT fusion on non-identity directions and non-isotropic spacing."""

import numpy as np
import pytest
import SimpleITK as sitk

from LNStagingLib.errors import GeometryError
from LNStagingLib.io.images import read_image
from LNStagingLib.io.petct import load_pet_ct
from LNStagingLib.io.resample import (isotropic_grid, overlap_fraction, require_overlap, resample_isotropic,
                                      resample_to_reference, world_bounds)

IBSI = "ibsi_validation_sts"


@pytest.fixture(scope="module")
def flipped_ct(data_dir):
    image = read_image(data_dir / "totalsegmentator/example_ct.nii.gz")
    assert image.GetDirection() == (-1, 0, 0, 0, -1, 0, 0, 0, 1) and image.GetSpacing() == (3, 3, 3)
    return image


def _value_at(image, point):
    return image[image.TransformPhysicalPointToIndex(point)]


def test_isotropic_grid_keeps_direction_and_extent(flipped_ct, data_dir):
    grid = isotropic_grid(flipped_ct, 1.0)
    assert grid.GetDirection() == flipped_ct.GetDirection()
    assert grid.GetSize() == tuple(3 * s for s in flipped_ct.GetSize())
    lo, hi = world_bounds(flipped_ct)
    lo1, hi1 = world_bounds(grid)
    assert np.allclose(lo, lo1, atol=1e-6) and np.allclose(hi, hi1, atol=1e-6)
    fine = resample_isotropic(flipped_ct, 1.0, "nearest")
    for index in [(10, 20, 30), (100, 80, 5), (61, 50, 100)]:  # same tissue at the same world point
        point = flipped_ct.TransformIndexToPhysicalPoint(index)
        assert _value_at(fine, point) == flipped_ct[index]

    sts = read_image(data_dir / IBSI / "nifti/STS_001/CT_image.nii.gz")
    assert sts.GetSpacing() == pytest.approx((0.976562, 0.976562, 3.27), abs=1e-5)
    sts_grid = isotropic_grid(sts, 1.0)
    lo, hi = world_bounds(sts)
    lo1, hi1 = world_bounds(sts_grid)
    assert np.all(lo1 >= lo - 1e-6) and np.all(hi1 - hi < 1.0) and np.all(hi1 - hi > -1e-6)
    assert sts_grid.GetSize() == (194, 198, 193)


def test_resample_onto_rotated_reference(flipped_ct):
    """A permuted/flipped copy (other direction, same world) is reproduced exactly with nearest neighbour."""
    rotated = sitk.DICOMOrient(flipped_ct, "SLP")
    assert rotated.GetSize() == (112, 122, 101)
    back = resample_to_reference(rotated, flipped_ct, "nearest")
    assert np.array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(flipped_ct))
    assert resample_to_reference(flipped_ct, flipped_ct) is flipped_ct


def test_overlap(flipped_ct):
    assert overlap_fraction(flipped_ct, flipped_ct) == pytest.approx(1.0)
    half = flipped_ct[:, :, :56]
    assert overlap_fraction(half, flipped_ct) == pytest.approx(0.5)
    far = sitk.Image(flipped_ct)
    far.SetOrigin(np.add(flipped_ct.GetOrigin(), (0, 0, 2000)).tolist())
    assert overlap_fraction(far, flipped_ct) == 0.0
    with pytest.raises(GeometryError, match="do not overlap"):
        require_overlap(far, flipped_ct)


def test_pet_on_ct_grid_from_dicom(data_dir):
    pair = load_pet_ct(data_dir / IBSI / "dicom/STS_001/CT/image", data_dir / "mirp_sts_raw_pet/STS_001/FDG_PET/image")
    assert pair.suv.factor == pytest.approx(2.4290298e-4, rel=1e-7)
    assert pair.pet_suv.GetSize() == pair.ct.GetSize() == (198, 202, 59)
    assert pair.frame_of_reference_uid == pair.pet_series.frame_of_reference_uid
    # the hottest CT-grid voxel holds (linearly interpolated) IBSI SUV: never above the PET-grid max 25.41
    suv = sitk.GetArrayViewFromImage(pair.pet_suv)
    assert 20.0 < suv.max() <= 25.4124
    working = pair.on_working_grid(1.0)
    assert working.ct.GetSpacing() == (1.0, 1.0, 1.0) and working.pet_suv.GetSize() == working.ct.GetSize()


def test_pet_on_flipped_ct_equals_flipped_pet_on_ct(data_dir, tmp_path):
    ct = read_image(data_dir / IBSI / "nifti/STS_001/CT_image.nii.gz")
    ras = tmp_path / "ct_ras.nii.gz"
    sitk.WriteImage(sitk.DICOMOrient(ct, "RAS"), str(ras))
    pet = data_dir / IBSI / "nifti/STS_001/PET_image.nii.gz"
    lps_pair = load_pet_ct(data_dir / IBSI / "nifti/STS_001/CT_image.nii.gz", pet)
    ras_pair = load_pet_ct(ras, pet)
    assert ras_pair.ct.GetDirection() == (-1, 0, 0, 0, -1, 0, 0, 0, 1)
    expected_image = sitk.DICOMOrient(lps_pair.pet_suv, "RAS")  # kept alive while its array view is read
    expected = sitk.GetArrayViewFromImage(expected_image)
    assert np.allclose(sitk.GetArrayViewFromImage(ras_pair.pet_suv), expected, atol=1e-4)


def test_registration_moves_the_pet(data_dir):
    """The transform maps CT points to PET points (ITK convention): a one-slice shift moves the PET one slice."""
    ct = data_dir / IBSI / "dicom/STS_001/CT/image"
    pet = data_dir / IBSI / "dicom/STS_001/PET/image"
    plain = load_pet_ct(ct, pet)
    shift = sitk.TranslationTransform(3, (0.0, 0.0, 3.27))  # CT point -> PET point one slice higher
    moved = load_pet_ct(ct, pet, registration=shift)
    a, b = sitk.GetArrayViewFromImage(plain.pet_suv), sitk.GetArrayViewFromImage(moved.pet_suv)
    assert np.allclose(b[:-1], a[1:], atol=1e-4)
