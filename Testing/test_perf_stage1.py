"""Stage-1 windows run in batches: the same bits whether windows are skipped or not, and close to one at a time."""

import numpy as np
import pytest
import torch

from stage1_support import one_thread  # noqa: F401  (autouse fixture)

from LNStagingLib.inference.segmentation import sliding_window_logits
from LNStagingLib.models.unet import AttentionUNet, unet_config


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(5)
    return AttentionUNet(unet_config("tiny", use_pet=True)).eval()


def _volume(shape=(30, 70, 45), seed=1):
    rng = np.random.default_rng(seed)
    channels = rng.normal(size=(2, *shape)).astype(np.float32)
    attention = np.zeros((1, *shape), np.float32)
    attention[0, 3:14, 10:40, 4:22] = rng.random((11, 30, 18))
    attention[0, -4, -3, -6] = 0.7
    return channels, attention


@pytest.mark.parametrize("batch_size", [1, 3, 4])
def test_batched_skipping_equals_batched_full_sliding_window(model, batch_size):
    channels, attention = _volume()
    skipped, stats = sliding_window_logits(model, channels, attention, skip_empty=True, batch_size=batch_size)
    full, full_stats = sliding_window_logits(model, channels, attention, skip_empty=False, batch_size=batch_size)
    assert 0 < stats["run"] < full_stats["run"] and stats["run"] % 3 != 0  # a last batch that is filled up
    assert np.array_equal(skipped, full)


def test_batches_agree_with_one_window_at_a_time(model):
    channels, attention = _volume()
    one, _ = sliding_window_logits(model, channels, attention, batch_size=1)
    four, _ = sliding_window_logits(model, channels, attention, batch_size=4)
    assert np.abs(one - four).max() < 1e-4
