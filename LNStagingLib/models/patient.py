"""Patient-level LN metastasis network (paper 2, sec. III-B, eq. 6-7).

Each of the nine tumour patches (models/tumor_slices.py) goes through a 2D ResNet-18 (MONAI's ResNet with
spatial_dims=2) whose conv1 features are multiplied by a mask side branch (Conv-ReLU on the tumour mask,
initialised to weight 0 and bias 1 so that it starts as the identity). Layer-4 features are pooled two ways,
global average pooling and the texture encoding layer, and concatenated (F, eq. 6). The volume of the largest
positive lymph node passes through BN + FC and is added to F (eq. 7). A linear head gives one logit per patch;
the patient's probability is the mean of the nine patch probabilities.

Options that reproduce the authors' code (issue 29; the defaults are what earlier checkpoints were trained with, so
those load unchanged): ``head="authors"`` puts a ReLU after the volume FC and makes the head two layers
(Linear - ReLU - Linear, 64 hidden units); ``tel_masked=True`` sums the texture encoding over the positions inside
the tumour mask only (the mask averaged down to the layer-4 grid weights each position); the authors' TEL size is
``tel_dim=64, tel_codewords=8``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from monai.networks.nets import ResNet
from torch import nn

from ..errors import ModelError
from .checkpoint import register_model
from .texture_encoding import TextureEncodingLayer
from .tumor_slices import extract_tumor_slices

REGISTRY_NAME = "patient_metastasis_resnet2d"


@dataclass
class PatientNetConfig:
    widths: tuple[int, int, int, int] = (64, 128, 256, 512)  # ResNet-18 block widths
    blocks: tuple[int, int, int, int] = (2, 2, 2, 2)
    tel_dim: int = 128  # Deep TEN: 1x1-conv reduction before the encoding
    tel_codewords: int = 32
    use_mask_branch: bool = True
    use_texture_encoding: bool = True
    use_ln_volume: bool = True
    # how the nine patches are made (travels in the checkpoint so inference samples as training did)
    slice_size: int = 224
    slice_spacing_mm: float = 1.0
    slices_per_plane: int = 3
    hu_window: tuple[float, float] = (-160.0, 240.0)  # abdominal window, mapped to [0, 1]
    dropout: float = 0.0
    head: str = "linear"  # "authors": ReLU after the volume FC, two-layer head (Linear - ReLU - Linear)
    tel_masked: bool = False  # the authors' TEL: encoding over the tumour mask's positions only


PATIENT_HEADS = ("linear", "authors")
AUTHORS_HIDDEN = 64  # the authors' classifier: Linear(features, 64) - ReLU - Linear(64, 1)


PRESETS = {
    "paper": PatientNetConfig(),
    "small": PatientNetConfig(widths=(16, 32, 64, 128), tel_dim=32, tel_codewords=8, slice_size=64,
                              slice_spacing_mm=1.5),
    "tiny": PatientNetConfig(widths=(4, 8, 8, 16), tel_dim=8, tel_codewords=4, slice_size=32, slice_spacing_mm=3.0),
}


def preset(name: str, **overrides) -> PatientNetConfig:
    if name not in PRESETS:
        raise ModelError(f"Unknown configuration {name!r}; use one of {', '.join(PRESETS)}.")
    return replace(PRESETS[name], **overrides)


class MaskSideBranch(nn.Module):
    """Conv-ReLU from the tumour mask to a map shaped like conv1's output; weight 0, bias 1 at start (identity)."""

    def __init__(self, channels: int, kernel_size: int = 7, stride: int = 2):
        super().__init__()
        self.conv = nn.Conv2d(1, channels, kernel_size, stride=stride, padding=kernel_size // 2)
        nn.init.zeros_(self.conv.weight)
        nn.init.ones_(self.conv.bias)

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(mask))


@register_model(REGISTRY_NAME, PatientNetConfig)
class PatientMetastasisNet(nn.Module):
    """forward(image (B,1,H,W), mask (B,1,H,W), ln_volume_mm3 (B,)) -> one logit per patch (B,)."""

    def __init__(self, config: PatientNetConfig):
        super().__init__()
        self.config = config
        widths = list(config.widths)
        # Same layout and parameter names as torchvision's resnet18 (conv1, bn1, layer1..4, downsample.0/.1)
        self.backbone = ResNet("basic", list(config.blocks), widths, spatial_dims=2, n_input_channels=1,
                               conv1_t_size=7, conv1_t_stride=2, feed_forward=False, bias_downsample=False)
        self.mask_branch = MaskSideBranch(widths[0]) if config.use_mask_branch else None
        self.texture = (TextureEncodingLayer(widths[3], config.tel_dim, config.tel_codewords)
                        if config.use_texture_encoding else None)
        n_features = widths[3] + (self.texture.out_features if self.texture is not None else 0)
        self.n_features = n_features
        if config.use_ln_volume:
            self.volume_norm = nn.BatchNorm1d(1)
            self.volume_fc = nn.Linear(1, n_features)
        self.dropout = nn.Dropout(config.dropout)
        if config.head not in PATIENT_HEADS:
            raise ModelError(f"Patient model config: unknown head {config.head!r} ({' or '.join(PATIENT_HEADS)}).")
        self.head = (nn.Linear(n_features, 1) if config.head == "linear" else
                     nn.Sequential(nn.Linear(n_features, AUTHORS_HIDDEN), nn.ReLU(), nn.Linear(AUTHORS_HIDDEN, 1)))

    def features(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """F = Concat(GAP(F_L4), TEL(F_L4)) (eq. 6)."""
        b = self.backbone
        x = b.act(b.bn1(b.conv1(image)))
        if self.mask_branch is not None:
            x = x * self.mask_branch(mask)
        x = b.maxpool(x)
        x = b.layer4(b.layer3(b.layer2(b.layer1(x))))
        pooled = [x.mean(dim=(2, 3))]
        if self.texture is not None:
            weights = nn.functional.adaptive_avg_pool2d(mask, x.shape[2:]) if self.config.tel_masked else None
            pooled.append(self.texture(x, weights))
        return torch.cat(pooled, dim=1)

    def forward(self, image: torch.Tensor, mask: torch.Tensor, ln_volume_mm3: torch.Tensor | None = None) -> torch.Tensor:
        f = self.features(image, mask)
        if self.config.use_ln_volume:
            if ln_volume_mm3 is None:
                raise ModelError("This patient model needs the volume of the largest positive lymph node (0 if none).")
            volume_cm3 = ln_volume_mm3.reshape(-1, 1).to(f.dtype) / 1000.0  # cm3 for numeric range; BN is scale-free
            volume = self.volume_fc(self.volume_norm(volume_cm3))  # eq. 7
            f = f + (torch.relu(volume) if self.config.head == "authors" else volume)
        return self.head(self.dropout(f)).squeeze(1)


def largest_node_volume_mm3(node_labels) -> float:
    """V_max_pLN of eq. 7: volume of the largest instance in a label map of positive nodes (0 when there is none)."""
    array = sitk.GetArrayViewFromImage(node_labels)
    counts = np.bincount(array[array > 0].ravel().astype(np.int64)) if array.any() else np.zeros(1, np.int64)
    return float(counts.max() * np.prod(node_labels.GetSpacing()))


def normalise_ct(hu: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    lo, hi = window
    return ((np.clip(hu, lo, hi) - lo) / (hi - lo)).astype(np.float32)


def patient_inputs(ct, tumor, config: PatientNetConfig, ln_volume_mm3: float = 0.0) -> dict[str, torch.Tensor]:
    """The network's inputs for one patient: the nine patches, their masks and the LN volume repeated."""
    slices = extract_tumor_slices(ct, tumor, config.slice_size, config.slice_spacing_mm, config.slices_per_plane)
    n = len(slices.planes)
    return {"image": torch.from_numpy(normalise_ct(slices.images, config.hu_window))[:, None],
            "mask": torch.from_numpy(slices.masks.astype(np.float32))[:, None],
            "ln_volume_mm3": torch.full((n,), float(ln_volume_mm3))}


@torch.no_grad()
def predict_patient(model: PatientMetastasisNet, inputs: dict[str, torch.Tensor]) -> float:
    """Metastasis probability of one patient: mean of the patch probabilities."""
    model.eval()
    device = next(model.parameters()).device
    logits = model(inputs["image"].to(device), inputs["mask"].to(device), inputs["ln_volume_mm3"].to(device))
    return float(torch.sigmoid(logits).mean())


@dataclass
class InitReport:
    """What a user-supplied weights file contributed."""

    loaded: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)  # e.g. 3-channel conv1 summed to 1 channel
    skipped: list[str] = field(default_factory=list)  # in the file but shape or name does not fit
    missing: list[str] = field(default_factory=list)  # in the model, not in the file (left as initialised)

    def summary(self) -> str:
        return (f"{len(self.loaded)} tensors loaded ({len(self.adapted)} adapted), {len(self.skipped)} in the file "
                f"unused, {len(self.missing)} of the model left at their initial values")


def load_init_weights(model: PatientMetastasisNet, path: Path | str) -> InitReport:
    """Partial load of user-supplied weights (e.g. an ImageNet ResNet-18 state dict saved with torch.save).

    Accepts a raw state dict, an LNStaging checkpoint, or a dict holding "state_dict"/"model"; loaded with
    ``weights_only=True``. Keys are matched as they are, or under ``backbone.`` (torchvision resnet18 names).
    An RGB first convolution is summed over its input channels to fit the one CT channel.
    """
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelError(f"Initial weights file {path} does not exist.") from None
    except Exception as error:
        raise ModelError(f"{path.name} cannot be read as a weights-only state dict ({type(error).__name__}); save "
                         "it with torch.save(model.state_dict(), path).") from error
    state = payload
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path.name} does not hold a state dict of tensors.")
    own = model.state_dict()
    report, update = InitReport(), {}
    for key, tensor in state.items():
        key = key.removeprefix("module.")
        target = key if key in own else f"backbone.{key}" if f"backbone.{key}" in own else None
        if target is None:
            report.skipped.append(key)
            continue
        if tensor.shape != own[target].shape:
            if (tensor.ndim == 4 and own[target].ndim == 4 and own[target].shape[1] == 1
                    and tensor.shape[0] == own[target].shape[0] and tensor.shape[2:] == own[target].shape[2:]):
                tensor = tensor.sum(dim=1, keepdim=True)
                report.adapted.append(target)
            else:
                report.skipped.append(key)
                continue
        update[target] = tensor.to(own[target].dtype)
        report.loaded.append(target)
    if not update:
        raise ModelError(f"No tensor of {path.name} fits the patient model; is it a ResNet-18 state dict?")
    model.load_state_dict(update, strict=False)
    report.missing = [k for k in own if k not in update]
    return report
