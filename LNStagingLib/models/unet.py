"""Stage 1: the distance-guided attention 3D U-Net (ln_attention_metastasis_pdac, sec. III-A).

An nnU-Net-style encoder/decoder: every stage is (conv3x3x3 - InstanceNorm - LeakyReLU) x 2, the first conv of an
encoder stage is strided (downsampling), decoders upsample with a transposed conv and concatenate the skip.
Deep supervision: a 1x1x1 segmentation head on the finest decoder level and on the next coarser ones.

The attention gate (the paper's contribution) multiplies the features that feed each segmentation head by the
attention map A_all, downsampled to that head's resolution (paper: "the deep features at the penultimate layer are
extracted and multiplied element-wisely with A_all ... injected to the intermediate decoder feature for each deep
supervision output"). Because the head is a 1x1x1 convolution, a voxel with zero attention gets exactly the head's
bias as logits, whatever the image: ``zero_attention_logits()``. That makes skipping all-zero-attention windows in
sliding-window inference exact, not approximate (inference/segmentation.py).

``use_attention=False`` gives the same network without the gate: the nnU-Net baseline of the paper's ablation.

Two options reproduce the authors' code where it differs from the defaults (issue 29; the defaults are what
earlier checkpoints were trained with, so those load unchanged): ``seg_head="authors"`` makes each head after the
gate 1x1 conv - InstanceNorm - LeakyReLU - 1x1 conv (default "conv": one 1x1 conv), and
``attention_resize="cubic"`` resizes the attention to the coarser deep-supervision levels by cubic interpolation
(default "average": average pooling). A window whose attention is all zero still gets one constant logit vector,
computed by passing zero features through the head, so window skipping stays exact with either head.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError
from .checkpoint import register_model

Triple = tuple[int, int, int]


def _triples(values) -> tuple[Triple, ...]:
    """Strides given as ints or (z, y, x) triples (lists after a JSON/checkpoint round trip) -> tuple of triples."""
    out = []
    for v in values:
        if isinstance(v, int):
            out.append((v, v, v))
        else:
            out.append(tuple(int(x) for x in v))
    return tuple(out)


SEG_HEADS = ("conv", "authors")
ATTENTION_RESIZES = ("average", "cubic")


@dataclass
class UNetConfig:
    """Size and inputs of the stage-1 network. Patch sizes and strides are in array order (z, y, x)."""

    features: tuple[int, ...] = (32, 64, 128, 256, 320, 320)
    strides: tuple = ((1, 1, 1), (2, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2), (1, 2, 2))
    use_pet: bool = False
    n_classes: int = 2
    use_attention: bool = True
    deep_supervision_outputs: int = 4  # heads on the finest decoder levels (final output included)
    patch_size: Triple = (80, 192, 160)
    negative_slope: float = 0.01
    # intensity normalisation (models/seg_inputs.py). CT: "window" (a fixed HU window, the small/tiny presets) or
    # "nnunet" (nnU-Net's CT scheme, the paper preset: clip to the 0.5/99.5 percentiles of the training set's
    # foreground, z-score with its mean and sd; ct_statistics = (p0.5, p99.5, mean, sd), set by training and
    # stored in the checkpoint). PET: SUV clipped to pet_max_suv.
    ct_window: tuple[float, float] = (-200.0, 300.0)
    ct_normalisation: str = "window"
    ct_statistics: tuple[float, ...] = ()
    pet_max_suv: float = 20.0
    preset: str = "paper"
    seg_head: str = "conv"  # "authors": 1x1 conv - InstanceNorm - LeakyReLU - 1x1 conv after the gate
    attention_resize: str = "average"  # "cubic": the authors' resize of A_all to the deep-supervision levels

    def __post_init__(self) -> None:
        self.features = tuple(int(f) for f in self.features)
        self.strides = _triples(self.strides)
        self.patch_size = tuple(int(p) for p in self.patch_size)
        self.ct_window = tuple(float(v) for v in self.ct_window)
        self.ct_statistics = tuple(float(v) for v in self.ct_statistics)
        if self.seg_head not in SEG_HEADS:
            raise ModelError(f"U-Net config: unknown segmentation head {self.seg_head!r} ({' or '.join(SEG_HEADS)}).")
        if self.attention_resize not in ATTENTION_RESIZES:
            raise ModelError(f"U-Net config: unknown attention resize {self.attention_resize!r} "
                             f"({' or '.join(ATTENTION_RESIZES)}).")
        if self.ct_normalisation not in ("window", "nnunet"):
            raise ModelError(f"U-Net config: unknown CT normalisation {self.ct_normalisation!r} (window or nnunet).")
        if self.ct_statistics and (len(self.ct_statistics) != 4 or not self.ct_statistics[3] > 0):
            raise ModelError("U-Net config: ct_statistics must be (p0.5, p99.5, mean, sd > 0).")
        if len(self.strides) != len(self.features):
            raise ModelError(f"U-Net config: {len(self.features)} stages but {len(self.strides)} strides.")
        if len(self.features) < 2:
            raise ModelError("U-Net config: at least two stages are needed.")
        total = self.total_stride
        if any(p % t for p, t in zip(self.patch_size, total)):
            raise ModelError(f"U-Net config: patch size {self.patch_size} must be divisible by the total stride {total}.")
        self.deep_supervision_outputs = max(1, min(int(self.deep_supervision_outputs), len(self.features) - 1))

    @property
    def in_channels(self) -> int:
        return 2 if self.use_pet else 1

    @property
    def total_stride(self) -> Triple:
        total = [1, 1, 1]
        for s in self.strides:
            total = [t * k for t, k in zip(total, s)]
        return tuple(total)

    def replace(self, **changes) -> "UNetConfig":
        return dataclasses.replace(self, **changes)


# nnU-Net sized (3d_fullres for a ~160x192x80 patch), CPU-trainable in minutes, and for tests.
PRESETS: dict[str, dict] = {
    "paper": dict(features=(32, 64, 128, 256, 320, 320),
                  strides=((1, 1, 1), (2, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2), (1, 2, 2)),
                  deep_supervision_outputs=4, patch_size=(80, 192, 160), ct_normalisation="nnunet"),
    "small": dict(features=(8, 16, 32, 64), strides=(1, 2, 2, 2), deep_supervision_outputs=3, patch_size=(32, 64, 64)),
    "tiny": dict(features=(4, 8, 8, 16), strides=(1, 2, 2, 2), deep_supervision_outputs=2, patch_size=(16, 32, 32)),
}


def unet_config(preset: str = "small", **overrides) -> UNetConfig:
    """A configuration from a named preset ("paper", "small", "tiny") with optional field overrides."""
    if preset not in PRESETS:
        raise ModelError(f"Unknown network size {preset!r}; use one of {', '.join(PRESETS)}.")
    return UNetConfig(**(PRESETS[preset] | {"preset": preset} | overrides))


class ConvBlock(nn.Module):
    """(conv3x3x3 - InstanceNorm - LeakyReLU) x 2; the first conv carries the stage's stride."""

    def __init__(self, in_ch: int, out_ch: int, stride: Triple, negative_slope: float):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv3d(in_ch, out_ch, 3, stride=stride, padding=1),
            nn.InstanceNorm3d(out_ch, affine=True),
            nn.LeakyReLU(negative_slope, inplace=True),
            nn.Conv3d(out_ch, out_ch, 3, padding=1),
            nn.InstanceNorm3d(out_ch, affine=True),
            nn.LeakyReLU(negative_slope, inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class UNetEncoder(nn.Module):
    """The contracting path; returns the features of every stage (finest first). Shared with the identifier."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        channels = [config.in_channels, *config.features]
        self.stages = nn.ModuleList(
            ConvBlock(channels[i], channels[i + 1], config.strides[i], config.negative_slope)
            for i in range(len(config.features)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        skips = []
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        return skips


def attention_at(attention: torch.Tensor, shape: tuple[int, ...], mode: str = "average") -> torch.Tensor:
    """The attention map at a decoder level's grid: averaged down (a window with any attention keeps some), or
    resized by cubic interpolation as the authors' code does (clipped to [0, 1]: cubic overshoots at edges)."""
    if tuple(attention.shape[2:]) == tuple(shape):
        return attention
    if mode == "average":
        return F.adaptive_avg_pool3d(attention, shape)
    from scipy.ndimage import zoom  # the attention is an input: no gradient flows through it

    array = attention.detach().cpu().numpy()
    factors = (1, 1, *(t / s for t, s in zip(shape, array.shape[2:])))
    resized = zoom(array, factors, order=3, mode="nearest", grid_mode=True)[(..., *(slice(0, t) for t in shape))]
    return torch.from_numpy(resized.clip(0.0, 1.0)).to(attention.device, attention.dtype)


def segmentation_head(channels: int, config: UNetConfig) -> nn.Module:
    """One 1x1x1 conv, or the authors' 1x1 conv - InstanceNorm - LeakyReLU - 1x1 conv."""
    if config.seg_head == "conv":
        return nn.Conv3d(channels, config.n_classes, 1)
    return nn.Sequential(nn.Conv3d(channels, channels, 1), nn.InstanceNorm3d(channels, affine=True),
                         nn.LeakyReLU(config.negative_slope, inplace=True), nn.Conv3d(channels, config.n_classes, 1))


@register_model("ln_seg_unet", UNetConfig)
class AttentionUNet(nn.Module):
    """3D U-Net with deep supervision and the distance-guided attention gate in front of every head.

    forward(x, attention) -> logits [B, n_classes, z, y, x] in eval mode; in training mode a list of logits, finest
    first, one per deep-supervision head (each at its decoder level's resolution).
    ``x``: [B, in_channels, z, y, x] normalised CT (+ PET); ``attention``: [B, 1, z, y, x] in [0, 1].
    """

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        f, s = config.features, config.strides
        self.encoder = UNetEncoder(config)
        n_up = len(f) - 1
        # decoder level j (0 = finest) upsamples from stage j+1 to stage j's grid
        self.upsamples = nn.ModuleList(nn.ConvTranspose3d(f[j + 1], f[j], kernel_size=s[j + 1], stride=s[j + 1])
                                       for j in range(n_up))
        self.decoders = nn.ModuleList(ConvBlock(2 * f[j], f[j], (1, 1, 1), config.negative_slope) for j in range(n_up))
        self.heads = nn.ModuleList(segmentation_head(f[j], config) for j in range(config.deep_supervision_outputs))

    def forward(self, x: torch.Tensor, attention: torch.Tensor | None = None):
        if self.config.use_attention and attention is None:
            raise ModelError("This segmentation model was trained with the attention map; compute it from the organ "
                             "masks (lnstaging attention) and pass it.")
        # Each full-resolution tensor is dropped as soon as the next step has used it (a skip once concatenated, the
        # concatenation once the first conv has read it, a decoder level once the next one is built unless a head
        # needs it): at inference only the finest level feeds a head, so a paper-size window holds about half the
        # memory it would with every level kept; the operations and their order are unchanged.
        skips = self.encoder(x)
        y = skips.pop()
        n_out = len(self.heads) if self.training else 1
        decoded: dict[int, torch.Tensor] = {}  # decoder level -> its features, for the levels with a head
        for j in reversed(range(len(self.decoders))):
            block = self.decoders[j].layers
            y = block[0](torch.cat([self.upsamples[j](y), skips.pop()], dim=1))
            y = block[1:](y)
            if j < n_out:
                decoded[j] = y
        outputs = [self.heads[k](self.gate(decoded.pop(k), attention)) for k in range(n_out)]
        return outputs if self.training else outputs[0]

    def gate(self, features: torch.Tensor, attention: torch.Tensor | None) -> torch.Tensor:
        """Spatially scale the features by the attention map (identity for the baseline)."""
        if not self.config.use_attention:
            return features
        return features * attention_at(attention.to(features.dtype), features.shape[2:], self.config.attention_resize)

    def zero_attention_logits(self) -> torch.Tensor:
        """The exact logits [n_classes] of a window whose attention is 0 everywhere: the final head applied to zero
        features (its bias for the 1x1 conv head)."""
        if not self.config.use_attention:
            raise ModelError("The baseline network has no attention gate; its output depends on every window.")
        head = self.heads[0]
        zeros = torch.zeros(1, head[0].in_channels if isinstance(head, nn.Sequential) else head.in_channels, 2, 2, 2,
                            device=head_device(head))
        was_training = head.training
        head.eval()
        with torch.no_grad():
            logits = head(zeros)[0, :, 0, 0, 0].detach().clone()
        head.train(was_training)
        return logits


def head_device(head: nn.Module) -> torch.device:
    return next(head.parameters()).device


#: How many first-level feature voxels one network call may hold: what the small preset batches where batching pays
#: (~3x per window on a CPU thread): eight identification patches of 32 x 48 x 48 voxels x 8 features (four stage-1
#: windows of 32 x 64 x 64 fit too). A paper-size window (80 x 192 x 160 voxels x 32 features) is 17x that on its
#: own, so it runs alone: batching it only multiplies the memory (10 GB for four windows,
#: benchmarks/paper_size_benchmark.py) and, on a case of fewer windows, the work spent on padding copies.
ACTIVATION_BUDGET = 8 * 32 * 48 * 48 * 8


def samples_per_call(config: UNetConfig, patch_size, upto: int) -> int:
    """Patches of ``patch_size`` voxels that one call of this network may batch: at most ``upto``, at least 1, and no
    more than ACTIVATION_BUDGET allows at the first level's width."""
    per_sample = math.prod(int(v) for v in patch_size) * int(config.features[0])
    return max(1, min(int(upto), ACTIVATION_BUDGET // per_sample))


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
