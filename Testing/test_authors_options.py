"""Options that reproduce the authors' code where the defaults differ (issue 29): the segmentation head and the
attention resize of stage 1, the patient model's head and masked texture encoding, paper 1's ResNet18 stem and the
(sin, cos) angle encoding of stage 2. Checkpoints written before these options load as they were trained."""

import dataclasses

import pytest
import torch

from LNStagingLib.models.checkpoint import build_model, load_checkpoint, save_checkpoint
from LNStagingLib.models.patient import PatientMetastasisNet, preset
from LNStagingLib.models.stage2 import Stage2Model, stage2_config
from LNStagingLib.models.texture_encoding import ResidualEncoding
from LNStagingLib.models.unet import AttentionUNet, attention_at, unet_config

PRIORS = ("x_norm", "y_norm", "z_norm", "tumor_distance_mm", "tumor_elevation_deg", "tumor_azimuth_deg")


def _old_payload(model, removed: tuple[str, ...], tmp_path):
    """A checkpoint as an earlier version wrote it: the config without the new fields."""
    path = tmp_path / "old.pt"
    save_checkpoint(path, model, model.config)
    payload = load_checkpoint(path)
    payload["config"] = {k: v for k, v in payload["config"].items() if k not in removed}
    return payload


@pytest.mark.parametrize("head", ["conv", "authors"])
def test_zero_attention_window_logits_are_exact_with_either_head(head):
    torch.manual_seed(0)
    model = AttentionUNet(unet_config("tiny", seg_head=head)).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 1, 16, 32, 32), torch.zeros(1, 1, 16, 32, 32))
    assert torch.equal(out, model.zero_attention_logits().view(1, -1, 1, 1, 1).expand_as(out))
    if head == "authors":
        assert [type(m).__name__ for m in model.heads[0]] == ["Conv3d", "InstanceNorm3d", "LeakyReLU", "Conv3d"]


def test_cubic_attention_resize_differs_from_average_and_stays_in_range():
    torch.manual_seed(1)
    attention = torch.zeros(1, 1, 16, 32, 32)
    attention[..., 4:12, 8:20, 10:22] = torch.rand(1, 1, 8, 12, 12)
    average, cubic = attention_at(attention, (8, 16, 16)), attention_at(attention, (8, 16, 16), "cubic")
    assert cubic.shape == average.shape and 0 <= float(cubic.min()) and float(cubic.max()) <= 1
    assert not torch.allclose(cubic, average, atol=1e-3)
    assert float(attention_at(torch.zeros(1, 1, 16, 32, 32), (8, 16, 16), "cubic").abs().max()) == 0.0


def test_old_checkpoints_load_with_the_behaviour_they_were_trained_with(tmp_path):
    torch.manual_seed(2)
    unet = AttentionUNet(unet_config("tiny"))
    rebuilt, config = build_model(_old_payload(unet, ("seg_head", "attention_resize"), tmp_path))
    assert (config.seg_head, config.attention_resize) == ("conv", "average")
    patient = PatientMetastasisNet(preset("tiny"))
    rebuilt, config = build_model(_old_payload(patient, ("head", "tel_masked"), tmp_path))
    assert (config.head, config.tel_masked) == ("linear", False)
    stage2 = Stage2Model(stage2_config("paper", head="cnn", use_priors=False))
    payload = _old_payload(stage2, ("stem", "angle_encoding"), tmp_path)
    payload["state_dict"] = Stage2Model(dataclasses.replace(stage2.config, stem="3x3")).state_dict()
    rebuilt, config = build_model(payload)  # an older paper-preset checkpoint: the 3x3x3 stem it was trained with
    assert config.stem == "3x3" and config.angle_encoding == "degrees"
    assert not any(isinstance(m, torch.nn.MaxPool3d) for m in rebuilt.cnn.stem)


def test_paper_preset_has_resnet18_stem():
    model = Stage2Model(stage2_config("paper", head="cnn", use_priors=False))
    conv, *_, pool = model.cnn.stem
    assert conv.kernel_size == (7, 7, 7) and conv.stride == (2, 2, 2) and isinstance(pool, torch.nn.MaxPool3d)
    assert stage2_config("small", use_priors=False).stem == "3x3"


def test_patient_authors_head_and_masked_texture_encoding():
    torch.manual_seed(3)
    model = PatientMetastasisNet(preset("tiny", head="authors", tel_masked=True, tel_dim=8, tel_codewords=4))
    assert [type(m).__name__ for m in model.head] == ["Linear", "ReLU", "Linear"] and model.head[0].out_features == 64
    encoding = ResidualEncoding(4, 3)
    features = torch.randn(1, 4, 5, 5)
    weights = torch.zeros(1, 1, 5, 5)
    weights[..., 1:3, 1:4] = 1.0
    changed = features.clone()
    changed[..., 4, :] = 50.0  # outside the mask
    assert torch.allclose(encoding(features, weights), encoding(changed, weights))
    assert not torch.allclose(encoding(features), encoding(changed))


def _angle_logits(encoding: str) -> torch.Tensor:
    torch.manual_seed(4)
    config = stage2_config("tiny", head="gnnp", prior_names=PRIORS, prior_mean=(0.0,) * 6, prior_std=(1.0,) * 6,
                           prior_trained=(True,) * 6, angle_encoding=encoding)
    model = Stage2Model(config).eval()
    images = torch.rand(2, 2, 48, 48, 48)
    masks = torch.zeros(2, 1, 48, 48, 48)
    masks[..., 20:28, 20:28, 20:28] = 1
    priors = torch.tensor([[0.1, 0.2, 0.3, 10.0, 30.0, 179.9], [0.1, 0.2, 0.3, 10.0, 30.0, -179.9]])
    with torch.no_grad():
        return model(images, masks, priors)


def test_sincos_angles_do_not_jump_at_180_degrees():
    """Two candidates 0.2 degrees of azimuth apart (across +-180): nearly one input with (sin, cos), far apart in
    z-scored degrees."""
    sincos, degrees = _angle_logits("sincos"), _angle_logits("degrees")
    assert abs(float(sincos[0] - sincos[1])) < 1e-3 < abs(float(degrees[0] - degrees[1]))


def test_tel_size_option_is_checked(tmp_path, capsys):
    from LNStagingLib.cli import main as cli

    assert cli(["train", "patient", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--tel-size", "64by8"]) == 2
    assert "DIMxCODEWORDS" in capsys.readouterr().err
