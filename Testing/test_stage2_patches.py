"""Stage-2 patches: geometry on real CT with a non-identity direction and on a non-isotropic, axis-permuted grid."""

import numpy as np
import pytest
import SimpleITK as sitk

from LNStagingLib.candidates.patches import PatchConfig, extract_patches, patch_geometry

RAW = PatchConfig(ct_window=(-4096.0, 4096.0))  # wider than the data (-1207..3382 HU): normalised = (HU + 4096) / 8192


@pytest.fixture(scope="module")
def ct(data_dir):
    image = sitk.ReadImage(str(data_dir / "totalsegmentator" / "example_ct.nii.gz"), sitk.sitkFloat32)
    assert image.GetDirection() != (1, 0, 0, 0, 1, 0, 0, 0, 1)
    return image


def _hu(normalised):
    return normalised * 8192.0 - 4096.0


def _voxel_points(image, indices):
    return np.array([image.TransformIndexToPhysicalPoint([int(v) for v in idx]) for idx in indices])


@pytest.mark.parametrize("orientation", ["lps", "image"])
def test_patch_centre_equals_image_value_at_candidate(ct, orientation):
    config = PatchConfig(ct_window=RAW.ct_window, orientation=orientation)
    rng = np.random.default_rng(0)
    size = np.array(ct.GetSize())
    indices = rng.integers(10, size - 10, size=(6, 3))
    points = _voxel_points(ct, indices)
    patches = extract_patches(ct, points, config=config)
    c = config.centre_index
    arr = sitk.GetArrayViewFromImage(ct)
    for k, (i, j, l) in enumerate(indices):
        assert _hu(patches.images[k, 0, c, c, c]) == pytest.approx(arr[l, j, i], abs=1e-2)
    # An off-voxel point: the centre value is ITK's linear interpolation at that physical point.
    point = points[0] + np.array([0.7, -1.3, 2.1])
    patch = extract_patches(ct, point[None], config=config)
    assert _hu(patch.images[0, 0, c, c, c]) == pytest.approx(ct.EvaluateAtPhysicalPoint(point.tolist()), abs=1e-2)


def test_off_centre_voxels_are_at_their_physical_points_on_permuted_anisotropic_grid(ct):
    rotated = sitk.PermuteAxes(ct, [2, 0, 1])
    rotated.SetSpacing((3.0, 2.0, 5.0))  # non-isotropic
    assert not np.allclose(np.abs(np.asarray(rotated.GetDirection()).reshape(3, 3)), np.eye(3))
    centre = np.array(rotated.TransformIndexToPhysicalPoint([20, 30, 15]))
    for orientation in ("lps", "image"):
        config = PatchConfig(ct_window=RAW.ct_window, orientation=orientation)
        patch = extract_patches(rotated, centre[None], config=config).images[0, 0]
        origin, spacing, direction = patch_geometry(centre, 1.0, rotated, config)
        d = np.asarray(direction).reshape(3, 3)
        for idx in ([5, 40, 24], [24, 3, 33], [47, 0, 12]):
            p = np.asarray(origin) + d @ (np.asarray(idx) * spacing[0])
            expected = rotated.EvaluateAtPhysicalPoint(p.tolist()) if _inside(rotated, p) else -1024.0
            assert _hu(patch[idx[2], idx[1], idx[0]]) == pytest.approx(expected, abs=1e-2)
    # LPS orientation: +x in the patch is +x (towards patient left) in the world.
    config = PatchConfig(ct_window=RAW.ct_window, orientation="lps")
    origin, spacing, _ = patch_geometry(centre, 1.0, rotated, config)
    assert np.allclose(np.asarray(origin) + np.array([24.0, 24, 24]), centre)


def _inside(image, point):
    idx = np.asarray(image.TransformPhysicalPointToContinuousIndex(point.tolist()))
    return bool(np.all(idx >= 0) and np.all(idx <= np.asarray(image.GetSize()) - 1))


def test_large_node_is_resized_to_keep_an_8_voxel_margin(ct):
    labels = sitk.Image(ct.GetSize(), sitk.sitkUInt16)
    labels.CopyInformation(ct)
    arr = np.zeros(sitk.GetArrayViewFromImage(ct).shape, np.uint16)
    zc, yc, xc = (np.array(arr.shape) // 2)
    zz, yy, xx = np.ogrid[: arr.shape[0], : arr.shape[1], : arr.shape[2]]
    arr[((zz - zc) ** 2 + (yy - yc) ** 2 + (xx - xc) ** 2) <= 9 ** 2] = 7  # radius 9 vox * 3 mm = 27 mm
    arr[zc, yc, xc + 20] = 3  # a one-voxel node elsewhere
    labels = sitk.GetImageFromArray(arr)
    labels.CopyInformation(ct)
    centres = _voxel_points(ct, [[xc, yc, zc], [xc + 20, yc, zc]])
    patches = extract_patches(ct, centres, label_map=labels, label_ids=[7, 3])
    extent = 19 * 3.0  # 19 voxels of 3 mm, centred on the candidate
    assert patches.scales[0] == pytest.approx(extent / 31.0)
    assert patches.scales[1] == 1.0
    mask = patches.masks[0, 0]
    assert mask[24, 24, 24] == 1
    nz = np.nonzero(mask)
    for axis in range(3):
        assert nz[axis].min() >= 8 and nz[axis].max() <= 48 - 1 - 8
    # A candidate without a mask gets a sphere of roi_radius_mm.
    sphere = extract_patches(ct, centres[:1]).masks[0, 0]
    assert sphere.sum() == np.sum(np.sum((np.indices((48,) * 3) - 24) ** 2, axis=0) <= 25)
    assert sphere[24, 24, 24] == 1 and sphere[24, 24, 30] == 0


def test_batches_equal_one_at_a_time(ct):
    rng = np.random.default_rng(3)
    points = _voxel_points(ct, rng.integers(5, np.array(ct.GetSize()) - 5, size=(7, 3))) + rng.normal(size=(7, 3))
    pet = sitk.Cast(sitk.Clamp(ct, lowerBound=0, upperBound=1000), sitk.sitkFloat32) / 100.0
    batched = extract_patches(ct, points, pet=pet, batch_size=3)
    for i in range(7):
        single = extract_patches(ct, points[i:i + 1], pet=pet)
        assert np.array_equal(batched.images[i], single.images[0]) and np.array_equal(batched.masks[i], single.masks[0])
