"""Sliding-window inference that skips zero-attention windows equals the full sliding window, exactly."""

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from stage1_support import one_thread  # noqa: F401  (autouse fixture)

from LNStagingLib.errors import Cancelled
from LNStagingLib.inference.segmentation import segment_lymph_nodes, sliding_window_logits, window_starts
from LNStagingLib.models.unet import AttentionUNet, unet_config
from LNStagingLib.progress import Progress


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(3)
    net = AttentionUNet(unet_config("tiny"))
    with torch.no_grad():
        net.heads[0].bias.copy_(torch.tensor([1.1, -0.4]))
    return net.eval()


def _volume(shape=(30, 56, 45), seed=0):
    rng = np.random.default_rng(seed)
    channels = rng.normal(size=(1, *shape)).astype(np.float32)
    attention = np.zeros((1, *shape), np.float32)
    attention[0, 4:12, 8:24, 5:20] = rng.random((8, 16, 15))  # attention in one corner region only
    attention[0, -5, -6, -5] = 0.2  # and one isolated voxel
    return channels, attention


def test_window_starts_cover_the_axis():
    assert window_starts(10, 16, 0.5) == [0]
    starts = window_starts(45, 32, 0.5)
    assert starts[0] == 0 and starts[-1] == 45 - 32 and all(b - a <= 16 for a, b in zip(starts, starts[1:]))


def test_skipping_equals_full_sliding_window(model):
    channels, attention = _volume()
    skipped, stats = sliding_window_logits(model, channels, attention, skip_empty=True)
    full, full_stats = sliding_window_logits(model, channels, attention, skip_empty=False)
    assert stats["skipped"] > 0 and stats["run"] < full_stats["run"] == full_stats["windows"]
    assert np.array_equal(skipped, full)  # bit for bit
    assert skipped.shape == (2, *channels.shape[1:])
    # far from any attention the logits are the head's bias
    np.testing.assert_array_equal(skipped[:, 20, 0, 0], model.zero_attention_logits().numpy())


def test_baseline_never_skips():
    torch.manual_seed(0)
    baseline = AttentionUNet(unet_config("tiny", use_attention=False)).eval()
    channels, attention = _volume((16, 40, 40))
    _, stats = sliding_window_logits(baseline, channels, None, skip_empty=True)
    assert stats["skipped"] == 0


def test_segment_images_keeps_geometry_progress_and_cancel(model, data_dir):
    ct = sitk.ReadImage(str(data_dir / "totalsegmentator/example_ct_sm.nii.gz"))
    ct = ct[40:85, 30:70, 5:25]  # a small crop of a real CT with direction diag(-1,-1,1)
    attention = sitk.Image(ct.GetSize(), sitk.sitkFloat32)
    attention.CopyInformation(ct)
    attention[10:20, 10:20, 5:10] = 1.0
    steps = []
    probability, stats = segment_lymph_nodes(model, ct, attention, progress=Progress(lambda f, m: steps.append(f)))
    assert probability.GetDirection() == ct.GetDirection() and probability.GetSize() == ct.GetSize()
    assert steps[-1] == 1.0 and len(steps) == stats["windows"] + 1
    array = sitk.GetArrayFromImage(probability)
    assert ((array >= 0) & (array <= 1)).all()
    progress = Progress()
    progress.cancel()
    with pytest.raises(Cancelled):
        segment_lymph_nodes(model, ct, attention, progress=progress)
    shifted = sitk.Image(attention)
    shifted.SetOrigin([o + 5 for o in ct.GetOrigin()])
    with pytest.raises(Exception, match="not on the CT grid"):
        segment_lymph_nodes(model, ct, shifted)
