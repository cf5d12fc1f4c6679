"""Instances and measurements on a real label map whose direction is not the identity (RAS on disk -> diag(-1,-1,1))."""

import numpy as np
import pytest
import scipy.ndimage as ndi
import SimpleITK as sitk

from LNStagingLib.candidates.instances import instances_from_probability
from LNStagingLib.candidates.measure import axial_axis, measure_instances, short_axis_mm

SEG = "totalsegmentator/example_seg_fast_force_split.nii.gz"
SMALL_LABELS = (98, 99, 100, 101, 102, 103, 110, 111, 112, 113, 114, 115, 33, 8)


@pytest.fixture(scope="module")
def seg(data_dir):
    image = sitk.ReadImage(str(data_dir / SEG))
    assert image.GetDirection() != (1, 0, 0, 0, 1, 0, 0, 0, 1)
    return image


def _probability_from_labels(seg, labels):
    array = sitk.GetArrayFromImage(seg)
    prob = np.where(np.isin(array, labels), 0.9, 0.1).astype(np.float32)
    image = sitk.GetImageFromArray(prob)
    image.CopyInformation(seg)
    return image, np.isin(array, labels)


def _physical(image, index_zyx):
    """Index (numpy order, may be fractional) -> LPS mm, written out independently of SimpleITK."""
    direction = np.array(image.GetDirection()).reshape(3, 3)
    return np.array(image.GetOrigin()) + direction @ (np.array(image.GetSpacing()) * np.asarray(index_zyx)[::-1])


def test_instances_match_scipy_components_and_min_size(seg):
    prob, mask = _probability_from_labels(seg, SMALL_LABELS)
    min_mm3 = 150 * 27.0  # 150 voxels of 3 mm
    labels = instances_from_probability(prob, threshold=0.5, min_volume_mm3=min_mm3)
    assert labels.GetDirection() == seg.GetDirection() and labels.GetOrigin() == seg.GetOrigin()
    array = sitk.GetArrayFromImage(labels)
    components, n = ndi.label(mask)  # face connectivity, as ours
    sizes = np.bincount(components.ravel())[1:]
    kept = sorted((s for s in sizes if s >= 150), reverse=True)
    ours = [int((array == k).sum()) for k in range(1, array.max() + 1)]
    assert ours == kept and len(kept) >= 3 and len(kept) < n


def test_float32_and_float64_probability_give_the_same_instances(seg):
    """A float32 map is thresholded without a copy (issue 32's memory); another pixel type is cast first: same labels."""
    prob, _ = _probability_from_labels(seg, SMALL_LABELS)
    as_float64 = sitk.Cast(prob, sitk.sitkFloat64)
    a, b = (instances_from_probability(image, threshold=0.5, min_volume_mm3=150 * 27.0) for image in (prob, as_float64))
    assert a.GetPixelID() == b.GetPixelID() == sitk.sitkUInt16
    assert np.array_equal(sitk.GetArrayViewFromImage(a), sitk.GetArrayViewFromImage(b))
    assert sitk.GetArrayViewFromImage(a).max() >= 3 and prob.GetPixelID() == sitk.sitkFloat32


def test_measure_centroid_volume_on_non_identity_non_isotropic_grid(seg):
    array = sitk.GetArrayFromImage(seg)
    labels_np = np.zeros(array.shape, np.uint16)
    for new_id, value in enumerate((98, 100, 113), start=1):
        labels_np[array == value] = new_id
    labels = sitk.GetImageFromArray(labels_np)
    labels.CopyInformation(seg)
    labels.SetSpacing((2.0, 3.0, 4.5))  # non-isotropic, direction diag(-1,-1,1)
    pet_np = np.random.default_rng(0).random(array.shape).astype(np.float32) * 5
    pet = sitk.GetImageFromArray(pet_np)
    pet.CopyInformation(labels)
    candidates = measure_instances(labels, pet)
    assert [c.id for c in candidates] == [1, 2, 3]
    for c in candidates:
        inside = labels_np == c.id
        expected = _physical(labels, np.argwhere(inside).mean(axis=0))
        np.testing.assert_allclose(c.centroid_lps, expected, atol=1e-6)
        assert c.volume_ml == pytest.approx(inside.sum() * 2.0 * 3.0 * 4.5 / 1000.0)
        assert c.suv_max == pytest.approx(pet_np[inside].max())
        assert 0 < c.short_axis_mm < 100
        # SUVpeak: the mean of the voxels whose centres lie in a 1 ml sphere (radius 6.2 mm, in mm on this grid)
        # around the instance's hottest voxel (voxels outside the image count 0)
        hottest = np.unravel_index(int(np.argmax(np.where(inside, pet_np, -np.inf))), pet_np.shape)
        offsets = np.argwhere(np.ones((7, 7, 7), bool)) - 3
        within = offsets[np.linalg.norm(offsets * [4.5, 3.0, 2.0], axis=1) <= (3000 / (4 * np.pi)) ** (1 / 3)]
        points = within + hottest
        ok = np.all((points >= 0) & (points < pet_np.shape), axis=1)
        expected_peak = pet_np[tuple(points[ok].T)].sum() / len(within)
        assert c.suv_peak == pytest.approx(expected_peak, rel=1e-5)
    assert np.isnan(measure_instances(labels)[0].suv_max) and np.isnan(measure_instances(labels)[0].suv_peak)


def test_short_axis_of_an_ellipse_in_a_rotated_image(seg):
    # An axial ellipse with diameters 30 mm x 12 mm, drawn on a grid whose axes are permuted and flipped:
    # the short axis is read in the slice normal to patient S, whichever array axis that is.
    grid = sitk.Image(40, 60, 50, sitk.sitkUInt16)
    grid.SetSpacing((1.0, 0.5, 2.0))
    grid.SetDirection((0, 0, 1, 0, -1, 0, 1, 0, 0))  # index x -> S, y -> -P, z -> L
    grid.SetOrigin(seg.GetOrigin())
    assert axial_axis(grid) == 2  # index axis x (numpy axis 2) runs along S
    z, y, x = np.meshgrid(*(np.arange(n) for n in grid.GetSize()[::-1]), indexing="ij")
    # physical in-plane coordinates: index z step 2 mm along L, index y step 0.5 mm along -P
    left, post = (z - 25) * 2.0, (y - 30) * 0.5
    ellipse = ((left / 15.0) ** 2 + (post / 6.0) ** 2 <= 1.0) & (abs(x - 20) <= 3)
    axis = short_axis_mm(ellipse, grid)
    assert axis == pytest.approx(12.0, abs=1.0)
    labels = sitk.GetImageFromArray(ellipse.astype(np.uint16))
    labels.CopyInformation(grid)
    (candidate,) = measure_instances(labels)
    assert candidate.short_axis_mm == pytest.approx(axis)
