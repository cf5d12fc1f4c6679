"""Stage-1 network: shapes, deep supervision, the exact zero-attention output, loss, overfit, checkpoints."""

import numpy as np
import pytest
import torch

from stage1_support import one_thread  # noqa: F401  (autouse fixture)

from LNStagingLib.models.checkpoint import load_model, save_checkpoint
from LNStagingLib.models.identification import InstanceIdentifier, identify_instances, instance_patch
from LNStagingLib.models.seg_loss import SegmentationLoss, deep_supervision_weights
from LNStagingLib.models.unet import AttentionUNet, unet_config


def _tiny(seed=0, **overrides):
    torch.manual_seed(seed)
    model = AttentionUNet(unet_config("tiny", **overrides))
    with torch.no_grad():  # non-trivial biases so "exactly the bias" is a real check
        for head in model.heads:
            head.bias.copy_(torch.tensor([0.7, -1.3]))
    return model


def test_shapes_and_deep_supervision_outputs():
    model = _tiny(use_pet=True)
    x, a = torch.randn(2, 2, 16, 32, 32), torch.rand(2, 1, 16, 32, 32)
    model.train()
    outputs = model(x, a)
    assert [tuple(o.shape) for o in outputs] == [(2, 2, 16, 32, 32), (2, 2, 8, 16, 16)]
    model.eval()
    assert tuple(model(x, a).shape) == (2, 2, 16, 32, 32)
    paper = unet_config("paper")
    assert paper.total_stride == (16, 32, 32) and paper.deep_supervision_outputs == 4


def _every_level_kept(model, x, attention):
    """The forward as it was before issue 32's memory fix: every skip and every decoded level kept to the end."""
    skips = model.encoder(x)
    y = skips[-1]
    decoded = []
    for j in reversed(range(len(model.decoders))):
        y = model.upsamples[j](y)
        y = model.decoders[j](torch.cat([y, skips[j]], dim=1))
        decoded.append(y)
    decoded.reverse()
    n_out = len(model.heads) if model.training else 1
    return [model.heads[k](model.gate(decoded[k], attention)) for k in range(n_out)]


@pytest.mark.parametrize("overrides", [dict(), dict(use_pet=True, seg_head="authors", attention_resize="cubic"),
                                       dict(use_attention=False)])
def test_forward_that_frees_levels_gives_the_same_bits(overrides):
    """Dropping each level once used (issue 32: a paper-size window's peak memory) changes no output bit, at
    inference (one head) and in training (every deep-supervision head)."""
    torch.manual_seed(1)
    model = AttentionUNet(unet_config("tiny", **overrides))
    x = torch.randn(2, model.config.in_channels, 16, 32, 32)
    attention = torch.rand(2, 1, 16, 32, 32)
    attention[0, :, :8] = 0
    model.eval()
    with torch.inference_mode():
        assert torch.equal(model(x, attention), _every_level_kept(model, x, attention)[0])
    model.train()
    with torch.no_grad():
        outputs, reference = model(x, attention), _every_level_kept(model, x, attention)
    assert len(outputs) == len(reference) == 2
    assert all(torch.equal(a, b) for a, b in zip(outputs, reference))


def test_zero_attention_gives_exactly_the_background_logits():
    model = _tiny().eval()
    x = torch.randn(1, 1, 16, 32, 32) * 3
    attention = torch.rand(1, 1, 16, 32, 32)
    attention[..., :, :, :12] = 0  # a slab without attention
    with torch.no_grad():
        logits = model(x, attention)
        other = model(torch.randn(1, 1, 16, 32, 32), attention)  # a different image
    bias = model.zero_attention_logits().view(2, 1, 1, 1)
    assert torch.equal(logits[0, :, :, :, :12], bias.expand(2, 16, 32, 12))
    assert torch.equal(other[0, :, :, :, :12], logits[0, :, :, :, :12])
    assert not torch.equal(logits[0, :, :, :, 12:], bias.expand(2, 16, 32, 20))
    # the gate at the coarser deep-supervision head too
    model.train()
    coarse = model(x, torch.zeros(1, 1, 16, 32, 32))[1]
    assert torch.equal(coarse[0], model.heads[1].bias.detach().view(2, 1, 1, 1).expand(2, 8, 16, 16))


def test_baseline_ignores_attention():
    model = _tiny(use_attention=False).eval()
    x = torch.randn(1, 1, 16, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x, torch.zeros(1, 1, 16, 32, 32)), model(x, torch.ones(1, 1, 16, 32, 32)))
    with pytest.raises(Exception):
        model.zero_attention_logits()
    with pytest.raises(Exception, match="attention"):
        _tiny().eval()(x)


def test_loss_is_ce_plus_paper_tversky():
    torch.manual_seed(1)
    logits = torch.randn(2, 2, 4, 5, 6)
    target = (torch.rand(2, 1, 4, 5, 6) > 0.7).long()
    p1 = torch.softmax(logits, 1)[:, 1]
    y1 = target[:, 0].float()
    tp, fp, fn = (p1 * y1).sum(), (p1 * (1 - y1)).sum(), ((1 - p1) * y1).sum()
    tversky = 1 - 2 * tp / (2 * tp + 0.5 * fp + 1.5 * fn)  # eq. 3 (as 1 - index), alpha 0.5, beta 1.5
    ce = torch.nn.functional.cross_entropy(logits, target[:, 0])
    assert float(SegmentationLoss()(logits, target)) == pytest.approx(float(ce + tversky), rel=1e-4)
    assert deep_supervision_weights(3) == pytest.approx([4 / 7, 2 / 7, 1 / 7])


def test_toy_overfit_loss_decreases():
    torch.manual_seed(0)
    model = AttentionUNet(unet_config("tiny"))
    x = torch.randn(2, 1, 16, 32, 32)
    y = torch.zeros(2, 1, 16, 32, 32, dtype=torch.long)
    y[:, :, 6:10, 12:20, 12:20] = 1
    x[y.bool()] += 2.0
    attention = torch.ones(2, 1, 16, 32, 32)
    loss_fn, optimizer = SegmentationLoss(), torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    losses = []
    for _ in range(12):
        optimizer.zero_grad()
        loss = loss_fn(model(x, attention), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_checkpoint_round_trip_rebuilds_identical_outputs(tmp_path):
    model = _tiny(use_pet=True).eval()
    sha = save_checkpoint(tmp_path / "seg.pt", model, model.config, training_data={"dataset": "toy"})
    rebuilt, config, payload = load_model(tmp_path / "seg.pt", expected_sha256=sha)
    assert config == model.config and payload["training_data"] == {"dataset": "toy"}
    x, a = torch.randn(1, 2, 16, 32, 32), torch.rand(1, 1, 16, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x, a), rebuilt(x, a))


def test_identifier_starts_from_segmentation_encoder(tmp_path):
    seg = _tiny()
    identifier = InstanceIdentifier.from_segmentation(seg)
    for (name, a), b in zip(seg.encoder.state_dict().items(), identifier.encoder.state_dict().values()):
        assert torch.equal(a, b), name
    sha = save_checkpoint(tmp_path / "id.pt", identifier, identifier.config)
    rebuilt = load_model(tmp_path / "id.pt", expected_sha256=sha)[0]
    channels = np.random.default_rng(0).normal(size=(1, 30, 40, 50)).astype(np.float32)
    labels = np.zeros((30, 40, 50), np.int32)
    labels[2:6, 3:8, 4:9] = 3  # near the corner: the patch is padded
    labels[20:25, 20:30, 30:40] = 7
    x, m = instance_patch(channels, labels, 3, identifier.config.id_patch_size, [-1.0])
    assert x.shape == (1, 16, 32, 32) and m.sum() == (labels == 3).sum() and (x == -1.0).any()
    probs = identify_instances(rebuilt, channels, labels)
    assert set(probs) == {3, 7} and all(0 <= p <= 1 for p in probs.values())
    assert probs == identify_instances(identifier, channels, labels)



def test_instance_patch_from_bounding_boxes_equals_the_voxel_list(data_dir):
    """Issue 32: the patch is centred from the instance's bounding box (ndimage.find_objects) instead of the list of
    its voxels (np.argwhere, which took gigabytes for a large instance): on a real label map (TotalSegmentator's,
    100+ structures, some at the border) the boxes equal the voxel lists' extremes, so the centre (min + max) // 2
    and the patches are the same, with and without the box given; ids missing from the map are still refused."""
    import SimpleITK as sitk
    from scipy import ndimage

    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(data_dir / "totalsegmentator/example_seg_fast_force_split.nii.gz")))
    channels = np.random.default_rng(0).normal(size=(1, *labels.shape)).astype(np.float32)
    boxes = ndimage.find_objects(labels)
    present = [i for i in range(1, labels.max() + 1) if boxes[i - 1] is not None]
    assert len(present) > 50
    centred_inside = 0
    for i in present:
        where = np.argwhere(labels == i)  # what the centre was computed from before
        from_voxels = tuple(slice(int(lo), int(hi) + 1) for lo, hi in zip(where.min(axis=0), where.max(axis=0)))
        assert boxes[i - 1] == from_voxels, i
        x, m = instance_patch(channels, labels, i, (16, 32, 32), [-1.0])
        centre = (where.min(axis=0) + where.max(axis=0)) // 2
        inside = tuple(slice(int(c) - p // 2, int(c) - p // 2 + p) for c, p in zip(centre, (16, 32, 32)))
        if all(s.start >= 0 and s.stop <= n for s, n in zip(inside, labels.shape)):
            assert np.array_equal(x[0], channels[0][inside]) and np.array_equal(m[0], labels[inside] == i), i
            centred_inside += 1
        x_box, m_box = instance_patch(channels, labels, i, (16, 32, 32), [-1.0], boxes[i - 1])
        assert np.array_equal(x, x_box) and np.array_equal(m, m_box), i
    assert centred_inside > 20
    absent = next(i for i in range(1, labels.max() + 1) if boxes[i - 1] is None)
    with pytest.raises(ValueError, match="not in the label map"):
        instance_patch(channels, labels, absent, (16, 32, 32), [-1.0])
