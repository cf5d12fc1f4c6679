"""Stage-1 input normalisation (nnU-Net's CT scheme, stored in the config) on a real CT, and nnU-Net's augmentation
(MONAI): label and image move together, deterministic for a seed."""

import numpy as np
import pytest
import SimpleITK as sitk
from stage1_support import one_thread  # noqa: F401  (autouse fixture)

from LNStagingLib.errors import ModelError
from LNStagingLib.models.seg_inputs import channel_pad_values, ct_foreground_statistics, network_channels
from LNStagingLib.models.unet import unet_config
from LNStagingLib.training.augment import augment_batch, nnunet_augmentation


@pytest.fixture(scope="module")
def real_ct(data_dir):
    """TotalSegmentator's example CT (3 mm, RAS direction) and its pancreas (label 7) as the 'foreground'."""
    ct = sitk.ReadImage(str(data_dir / "totalsegmentator/example_ct.nii.gz"))
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(data_dir / "totalsegmentator/example_seg_fast_force_split.nii.gz")))
    return ct, labels == 7


def test_nnunet_ct_normalisation_on_a_real_ct(real_ct):
    ct, foreground = real_ct
    hu = sitk.GetArrayFromImage(ct).astype(np.float64)
    stats = ct_foreground_statistics(hu[foreground])
    values = hu[foreground]
    assert stats == pytest.approx((np.percentile(values, 0.5), np.percentile(values, 99.5), values.mean(),
                                   values.std()))
    config = unet_config("tiny", ct_normalisation="nnunet", ct_statistics=stats)
    channel = network_channels(config, ct)[0]
    expected = (np.clip(hu, stats[0], stats[1]) - stats[2]) / stats[3]
    assert np.abs(channel - expected).max() < 1e-4
    inside = channel[foreground]
    assert abs(inside.mean()) < 0.1 and 0.8 < inside.std() < 1.05  # z-scored foreground (clipping shrinks the sd)
    assert channel_pad_values(config)[0] == pytest.approx((stats[0] - stats[2]) / stats[3])


def test_window_normalisation_is_unchanged_and_missing_statistics_are_refused(real_ct):
    ct, _ = real_ct
    window = unet_config("tiny")
    assert window.ct_normalisation == "window" and channel_pad_values(window) == [-1.0]
    assert unet_config("paper").ct_normalisation == "nnunet"
    with pytest.raises(ModelError, match="statistics"):
        network_channels(unet_config("tiny", ct_normalisation="nnunet"), ct)


def test_in_place_normalisation_gives_the_same_bits_as_before(real_ct, data_dir):
    """Issue 32 normalises one float32 copy in place (no CT-sized temporaries): the same bits as the expressions it
    replaced, on a real CT and PET, for both CT schemes, the PET, and the 1- and 2-channel stacks."""
    ct, foreground = real_ct
    hu = sitk.GetArrayViewFromImage(ct)
    pet_image = sitk.ReadImage(str(data_dir / "mirp_qin_headneck_0139/derived/pet_suv_headneck_crop.nii.gz"))
    suv = sitk.GetArrayViewFromImage(pet_image)
    stats = ct_foreground_statistics(hu[foreground])
    window_before = ((np.clip(hu.astype(np.float32), -200.0, 300.0) - 50.0) / 250.0).astype(np.float32)
    nnunet_before = ((np.clip(hu.astype(np.float32), stats[0], stats[1]) - np.float32(stats[2]))
                     / np.float32(stats[3])).astype(np.float32)
    pet_before = (np.clip(suv.astype(np.float32), 0.0, 20.0) * (4.0 / 20.0)).astype(np.float32)
    window = network_channels(unet_config("tiny"), ct)
    nnunet = network_channels(unet_config("tiny", ct_normalisation="nnunet", ct_statistics=stats), ct)
    assert window.shape == (1, *hu.shape) and window.dtype == nnunet.dtype == np.float32
    assert np.array_equal(window[0], window_before) and np.array_equal(nnunet[0], nnunet_before)
    ct_on_pet = sitk.Resample(ct, pet_image, sitk.Transform(), sitk.sitkLinear, -1024.0)
    both = network_channels(unet_config("tiny", use_pet=True), ct_on_pet, pet_image)
    assert both.shape == (2, *suv.shape)
    assert np.array_equal(both[1], pet_before) and np.unique(both[1]).size > 100


@pytest.mark.slow
def test_augmentation_moves_label_with_image_and_is_deterministic():
    rng = np.random.default_rng(0)
    label = np.zeros((2, 1, 16, 32, 32), np.int64)
    label[:, :, 4:10, 8:20, 10:18] = 1
    x = label.astype(np.float32) * 3.0 + rng.normal(0, 0.01, label.shape).astype(np.float32)
    attention = np.ones(label.shape, np.float32)
    transform = nnunet_augmentation()
    changed = False
    for seed in range(3):
        ax, aa, ay = augment_batch(transform, x, attention, label, np.random.default_rng(seed))
        assert ax.shape == x.shape and ay.dtype == label.dtype and set(np.unique(ay)) <= {0, 1}
        assert aa.min() >= 0 and aa.max() <= 1
        bright = ax > 1.5
        agreement = (bright == (ay == 1)).mean()
        assert agreement > 0.97, "the label follows the image through the spatial transforms"
        changed |= not np.array_equal(ay, label)
        again = augment_batch(transform, x, attention, label, np.random.default_rng(seed))
        assert all(np.array_equal(p, q) for p, q in zip((ax, aa, ay), again))
    assert changed
