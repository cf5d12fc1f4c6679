"""Lung and body masks from real CT without weights; lung landmarks for the normalised z."""

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from LNStagingLib.anatomy.body import body_mask, lung_landmarks, normalised_z, outside_air, world_points
from LNStagingLib.anatomy.lung import lung_mask
from LNStagingLib.errors import AnatomyError


@pytest.fixture(scope="module")
def chest(data_dir):
    return sitk.ReadImage(str(data_dir / "totalsegmentator/aorta_report/ct_cropped.nii.gz"))


@pytest.fixture(scope="module")
def abdomen(data_dir):
    return sitk.ReadImage(str(data_dir / "totalsegmentator/example_ct.nii.gz"))  # direction diag(-1,-1,1)


def _check_plausible(ct, lung, min_ml_each):
    hu = sitk.GetArrayFromImage(ct)
    mask = sitk.GetArrayFromImage(lung) != 0
    assert lung.GetDirection() == ct.GetDirection() and lung.GetOrigin() == ct.GetOrigin()
    assert np.median(hu[mask]) < -600  # aerated lung, not soft tissue
    assert not (mask & outside_air(hu.astype(np.float32))).any()  # no air outside the body
    # both lungs: lung tissue on the patient's right (LPS x < midline) and left, each a plausible volume
    points = world_points(lung, np.argwhere(mask))
    body = world_points(ct, np.argwhere(sitk.GetArrayFromImage(body_mask(ct)) != 0))
    midline = np.median(body[:, 0])
    voxel_ml = np.prod(ct.GetSpacing()) / 1000
    right, left = (points[:, 0] < midline).sum() * voxel_ml, (points[:, 0] > midline).sum() * voxel_ml
    assert right > min_ml_each and left > min_ml_each, (right, left)
    return mask, hu


def test_lung_mask_of_a_chest_ct(chest):
    lung = lung_mask(chest)
    mask, hu = _check_plausible(chest, lung, 800)
    assert ndimage.label(mask)[1] <= 2
    # the trachea (dark, round, midline in the top slice) is removed
    top = hu.shape[0] - 1
    assert hu[top, 58, 46] < -900 and not mask[top - 5: top + 1, 55:63, 43:51].any()


def test_lung_mask_of_an_abdominal_ct_with_lung_bases_and_bowel_gas(abdomen):
    lung = lung_mask(abdomen)
    mask, hu = _check_plausible(abdomen, lung, 20)
    assert ndimage.label(mask)[1] == 2
    lowest_lung = np.nonzero(mask.any(axis=(1, 2)))[0].min()
    gas = (hu < -900) & (sitk.GetArrayFromImage(body_mask(abdomen)) != 0)
    assert gas[: lowest_lung - 5].sum() > 1000 and not mask[: lowest_lung].any()  # bowel gas below: not lung


def test_same_lungs_whatever_the_orientation(abdomen):
    lung = sitk.GetArrayFromImage(lung_mask(abdomen))
    flipped = sitk.DICOMOrient(abdomen, "LPS")  # same voxels, identity direction
    back = sitk.DICOMOrient(lung_mask(flipped), "RAS")
    assert np.array_equal(sitk.GetArrayFromImage(back), lung)


def test_landmarks_and_normalised_z():
    lung = sitk.Image([20, 20, 30], sitk.sitkUInt8)
    lung.SetSpacing((2.0, 2.0, 3.0))
    lung.SetOrigin((0.0, 0.0, 100.0))
    array = np.zeros((30, 20, 20), np.uint8)
    array[5:26, 4:16, 4:16] = 1
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(lung)
    marks = lung_landmarks(image)
    assert marks.complete and marks.base_z == 115.0 and marks.apex_z == 175.0
    assert np.allclose(normalised_z([115.0, 145.0, 175.0, 85.0], marks), [0, 0.5, 1, -0.5])
    array[29] = 1  # lungs reaching the top slice: the apex is not imaged
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(lung)
    marks = lung_landmarks(image)
    assert marks.base_in_scan and not marks.apex_in_scan and not marks.complete
    assert "lung apex" in marks.why_incomplete()


def test_no_lung_is_a_clear_error(data_dir):
    ct = sitk.ReadImage(str(data_dir / "totalsegmentator/example_ct.nii.gz"))
    pelvis = ct[:, :, :40]
    with pytest.raises(AnatomyError, match="no lung"):
        lung_mask(pelvis)
