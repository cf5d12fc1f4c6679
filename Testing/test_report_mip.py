"""The coronal PET MIP shared by the report and the review page (report.coronal_mip, web/mip.py): the same picture
and the same marker place whatever the scan's direction, on the real IBSI STS_001 PET (NIfTI) and the same voxels
with permuted and flipped axes (a non-identity direction)."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from LNStagingLib.report import coronal_mip, mip_position

PET = "ibsi_validation_sts/nifti/STS_001/PET_image.nii.gz"


def test_coronal_mip_is_the_same_for_any_scan_direction(data_dir):
    pet = sitk.ReadImage(str(data_dir / PET), sitk.sitkFloat32)
    turned = sitk.Flip(sitk.PermuteAxes(pet, [1, 0, 2]), [True, False, True])  # same physical image, new direction
    assert not np.allclose(turned.GetDirection(), pet.GetDirection())
    mip, lo, spacing = coronal_mip(pet)
    mip_turned, lo_turned, _ = coronal_mip(turned)
    assert mip.shape == mip_turned.shape and np.allclose(lo, lo_turned, atol=1e-3)
    assert np.allclose(mip, mip_turned, atol=1e-3 * float(mip.max()))

    # the hottest voxel of the PET is drawn where mip_position puts it (superior at the top, patient right left):
    # the MIP's brightest pixel lies within 2 pixels (4 mm; the 2 mm grid interpolates the PET's voxels)
    array = sitk.GetArrayFromImage(turned)
    hottest = turned.TransformIndexToPhysicalPoint([int(v) for v in np.unravel_index(array.argmax(), array.shape)[::-1]])
    column, row = mip_position(hottest, lo_turned, spacing, mip_turned.shape[0])
    brightest_row, brightest_column = np.unravel_index(mip_turned.argmax(), mip_turned.shape)
    assert np.hypot(brightest_row - row, brightest_column - column) <= 2.0, ((row, column),
                                                                            (brightest_row, brightest_column))
