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
