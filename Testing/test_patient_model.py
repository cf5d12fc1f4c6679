"""Patient-level model (paper 2, III-B): mask branch, texture encoding, nine tumour slices, checkpoints."""

import functools

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from monai.networks.nets import ResNet

from LNStagingLib.errors import AnatomyError, ModelError
from LNStagingLib.models import patient
from LNStagingLib.models.checkpoint import load_model, save_checkpoint
from LNStagingLib.models.texture_encoding import ResidualEncoding, TextureEncodingLayer
from LNStagingLib.models.tumor_slices import extract_tumor_slices


def _tiny(**kw):
    return patient.preset("tiny", **kw)


def test_mask_branch_starts_as_identity():
    torch.manual_seed(0)
    branch = patient.MaskSideBranch(8)
    assert torch.count_nonzero(branch.conv.weight) == 0 and torch.all(branch.conv.bias == 1)
    mask = (torch.rand(2, 1, 32, 32) > 0.5).float()
    assert torch.equal(branch(mask), torch.ones(2, 8, 16, 16))
    with_branch = patient.PatientMetastasisNet(_tiny()).eval()
    without = patient.PatientMetastasisNet(_tiny(use_mask_branch=False)).eval()
    without.load_state_dict({k: v for k, v in with_branch.state_dict().items() if not k.startswith("mask_branch")})
    image, volume = torch.randn(2, 1, 32, 32), torch.tensor([0.0, 1500.0])
    assert torch.allclose(with_branch(image, mask, volume), without(image, mask, volume))
    # after a change to the branch the mask matters
    with torch.no_grad():
        with_branch.mask_branch.conv.weight.fill_(0.5)
    assert not torch.allclose(with_branch(image, mask, volume), with_branch(image, 1 - mask, volume))


def test_residual_encoding_matches_the_definition_and_has_gradients():
    torch.manual_seed(1)
    enc = ResidualEncoding(dim=5, n_codewords=3)
    x = torch.randn(2, 5, 4, 3, requires_grad=True)
    out = enc(x)
    assert out.shape == (2, 3, 5)
    xs = x.reshape(2, 5, -1).transpose(1, 2)  # (B, N, D)
    residual = xs[:, :, None, :] - enc.codewords[None, None]  # (B, N, K, D)
    a = torch.softmax(-enc.smoothing * (residual ** 2).sum(-1), dim=-1)
    assert torch.allclose(out, (a[..., None] * residual).sum(1), atol=1e-5)
    out.sum().backward()
    assert enc.codewords.grad.abs().sum() > 0 and enc.smoothing.grad.abs().sum() > 0 and x.grad.abs().sum() > 0


def test_texture_encoding_layer_shape_is_size_independent():
    tel = TextureEncodingLayer(16, dim=8, n_codewords=4)
    for h, w in ((3, 3), (7, 5)):
        out = tel(torch.randn(2, 16, h, w))
        assert out.shape == (2, 32)
        assert torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-5)


def test_forward_shapes_and_ablation_switches():
    image, mask = torch.randn(3, 1, 32, 32), torch.ones(3, 1, 32, 32)
    for kw in ({}, {"use_texture_encoding": False}, {"use_ln_volume": False}):
        model = patient.PatientMetastasisNet(_tiny(**kw)).eval()
        assert model(image, mask, torch.zeros(3)).shape == (3,)
    with pytest.raises(ModelError):
        patient.PatientMetastasisNet(_tiny()).eval()(image, mask, None)
    assert patient.PatientMetastasisNet(patient.preset("paper")).n_features == 512 + 128 * 32


@functools.lru_cache(maxsize=1)
def _ellipsoid_case():
    """Real CT, axes permuted (direction not identity, with flips) and a non-isotropic grid; ellipsoid tumour."""
    from pathlib import Path
    ct = sitk.ReadImage(str(Path(__file__).parent / "Data" / "totalsegmentator" / "example_ct.nii.gz"))
    ct = sitk.PermuteAxes(ct, [2, 0, 1])
    ct.SetSpacing((2.0, 3.0, 2.5))
    direction = np.array(ct.GetDirection()).reshape(3, 3)
    assert not np.allclose(direction, np.eye(3))
    size = np.array(ct.GetSize())
    idx = np.stack(np.meshgrid(*[np.arange(s) for s in size], indexing="ij"), -1).reshape(-1, 3)  # (i, j, k)
    points = np.array(ct.GetOrigin()) + (idx * np.array(ct.GetSpacing())) @ direction.T
    center = np.array(ct.TransformContinuousIndexToPhysicalPoint(tuple((size - 1) / 2.0)))
    semi = np.array([24.0, 15.0, 10.0])  # LPS x (left-right), y (antero-posterior), z (cranio-caudal), mm
    inside = (((points - center) / semi) ** 2).sum(1) <= 1
    mask = inside.reshape(tuple(size)).transpose(2, 1, 0).astype(np.uint8)  # -> [k, j, i]
    tumor = sitk.GetImageFromArray(mask)
    tumor.CopyInformation(ct)
    return ct, tumor, center, semi


def test_nine_slices_are_the_largest_areas_in_world_planes():
    ct, tumor, center, semi = _ellipsoid_case()
    spacing = 1.0
    s = extract_tumor_slices(ct, tumor, size=64, spacing_mm=spacing)
    assert s.images.shape == (9, 64, 64) and s.masks.shape == (9, 64, 64)
    assert s.planes == ("axial",) * 3 + ("coronal",) * 3 + ("sagittal",) * 3
    np.testing.assert_allclose(s.center_mm, center, atol=1.0)
    for p, (plane, axis, (a, b)) in enumerate([("axial", 2, (24, 15)), ("coronal", 1, (24, 10)),
                                               ("sagittal", 0, (15, 10))]):
        positions = np.array(s.positions_mm[3 * p:3 * p + 3])
        areas = np.array(s.areas_mm2[3 * p:3 * p + 3])
        # the three largest sections of an ellipsoid are the three closest to its centre
        assert np.all(np.abs(positions - center[axis]) <= 1.5 * spacing + 1.0), (plane, positions, center[axis])
        assert areas[0] >= areas[1] >= areas[2]
        assert areas[0] == pytest.approx(np.pi * a * b, rel=0.15)
    # orientation: axial columns are LPS x (width 48 mm), rows LPS y (30 mm); sagittal rows z (20 mm), cols y
    axial, sagittal = s.masks[0], s.masks[6]
    assert axial.any(axis=0).sum() * spacing == pytest.approx(2 * semi[0], abs=4)
    assert axial.any(axis=1).sum() * spacing == pytest.approx(2 * semi[1], abs=4)
    assert sagittal.any(axis=1).sum() * spacing == pytest.approx(2 * semi[2], abs=4)
    assert sagittal.any(axis=0).sum() * spacing == pytest.approx(2 * semi[1], abs=4)
    # CT is sampled at the same places: the patch centre holds real HU (not the -1024 background fill)
    assert np.all(s.images[:, 32, 32] > -1000)


def test_empty_tumour_is_refused():
    ct, tumor, _, _ = _ellipsoid_case()
    with pytest.raises(AnatomyError):
        extract_tumor_slices(ct, tumor * 0)


def test_checkpoint_round_trip_and_patient_prediction(tmp_path):
    ct, tumor, _, _ = _ellipsoid_case()
    config = _tiny()
    torch.manual_seed(0)
    model = patient.PatientMetastasisNet(config).eval()
    inputs = patient.patient_inputs(ct, tumor, config, ln_volume_mm3=900.0)
    assert inputs["image"].shape == (9, 1, 32, 32) and 0 <= float(inputs["image"].min())
    p = patient.predict_patient(model, inputs)
    digest = save_checkpoint(tmp_path / "patient.pt", model, config, training_data={"name": "t"})
    loaded, loaded_config, payload = load_model(tmp_path / "patient.pt", digest)
    assert loaded_config == config and isinstance(loaded, patient.PatientMetastasisNet)
    assert patient.predict_patient(loaded, inputs) == p
    assert 0 < p < 1


def test_user_supplied_resnet18_weights_partial_load(tmp_path):
    # a state dict with torchvision resnet18 names: RGB conv1 and an ImageNet fc
    torch.manual_seed(0)
    donor = ResNet("basic", [2, 2, 2, 2], [4, 8, 8, 16], spatial_dims=2, n_input_channels=3, conv1_t_stride=2,
                   bias_downsample=False, num_classes=1000)
    torch.save(donor.state_dict(), tmp_path / "resnet18.pth")
    model = patient.PatientMetastasisNet(_tiny())
    report = patient.load_init_weights(model, tmp_path / "resnet18.pth")
    assert report.adapted == ["backbone.conv1.weight"]
    assert "fc.weight" in report.skipped
    assert torch.allclose(model.backbone.conv1.weight, donor.conv1.weight.sum(1, keepdim=True))
    assert torch.equal(model.backbone.layer3[0].conv1.weight, donor.layer3[0].conv1.weight)
    assert any(k.startswith("texture") for k in report.missing) and "backbone.layer4.1.bn2.weight" in report.loaded
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(ModelError):
        patient.load_init_weights(model, tmp_path / "junk.pth")
