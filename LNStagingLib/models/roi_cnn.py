"""Multi-scale 3D CNN with ROI-GAP: a candidate's appearance feature f (paper 1, sec. 2.1).

ResNet18-style: a stem convolution, then four stages of basic residual blocks. After each stage the feature map is
averaged over the candidate's mask only (ROI-GAP, with the mask downsampled to that stage's resolution by average
pooling, so a partly covered coarse voxel counts by its covered fraction), passed through an FC layer (+ReLU) to
``feature_dim`` (256 in the paper) and the four vectors are concatenated: f has 4 x feature_dim = 1024 dims.
A linear classification head on f is the CNN-only baseline of Table 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError
from .checkpoint import register_model


STEMS = ("3x3", "resnet18")


@dataclass
class RoiCNNConfig:
    in_channels: int = 2  # 1 = CT only, 2 = CT + PET
    widths: tuple[int, ...] = (64, 128, 256, 512)
    blocks: tuple[int, ...] = (2, 2, 2, 2)  # ResNet18
    stem_stride: int = 2
    feature_dim: int = 256
    dropout: float = 0.0
    # "3x3": one 3x3x3 conv (earlier checkpoints; small and tiny); "resnet18": ResNet18's 7x7x7 conv then a 3x3x3
    # max-pool of stride 2, as paper 1's backbone (the paper preset)
    stem: str = "3x3"

    @property
    def f_dim(self) -> int:
        return self.feature_dim * len(self.widths)


ROI_CNN_PRESETS = {
    "paper": dict(widths=(64, 128, 256, 512), blocks=(2, 2, 2, 2), stem_stride=2, feature_dim=256, stem="resnet18"),
    "small": dict(widths=(8, 16, 32, 64), blocks=(1, 1, 1, 1), stem_stride=2, feature_dim=32),
    "tiny": dict(widths=(4, 8, 8, 16), blocks=(1, 1, 1, 1), stem_stride=4, feature_dim=8),
}


def roi_cnn_config(preset: str = "small", **overrides) -> RoiCNNConfig:
    if preset not in ROI_CNN_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(ROI_CNN_PRESETS)}")
    return RoiCNNConfig(**{**ROI_CNN_PRESETS[preset], **overrides})


def roi_gap(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of ``features`` [B, C, D, H, W] over ``mask`` [B, 1, d, h, w] (any resolution) -> [B, C].

    The mask is average-pooled to the feature resolution (soft weights); a candidate whose mask is empty is
    averaged over the whole patch rather than divided by zero.
    """
    weights = F.adaptive_avg_pool3d(mask.to(features.dtype), features.shape[2:])
    total = weights.sum(dim=(2, 3, 4))  # [B, 1]
    empty = total <= 0
    if bool(empty.any()):
        weights = torch.where(empty[:, :, None, None, None], torch.ones_like(weights), weights)
        total = weights.sum(dim=(2, 3, 4))
    return (features * weights).sum(dim=(2, 3, 4)) / total


class RowwiseLinear(nn.Linear):
    """nn.Linear computed as one matrix-vector product per row (bmm), so a candidate's output is bit-for-bit the
    same whatever else shares its batch: batched inference then equals the per-candidate loop exactly (a plain
    GEMM picks different kernels for 1 and for B rows, which changes the last bits)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.t().unsqueeze(0).expand(x.shape[0], -1, -1)
        return torch.bmm(x.unsqueeze(1), weight).squeeze(1) + self.bias


class BasicBlock3d(nn.Module):
    """The ResNet basic block in 3D (two 3x3x3 convs, batch norm, identity or 1x1x1 shortcut)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv3d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(cout)
        self.conv2 = nn.Conv3d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm3d(cout)
        self.shortcut = (nn.Identity() if stride == 1 and cin == cout else
                         nn.Sequential(nn.Conv3d(cin, cout, 1, stride, bias=False), nn.BatchNorm3d(cout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


@register_model("roi_cnn", RoiCNNConfig)
class RoiCNN(nn.Module):
    """forward(images [B, C, S, S, S], masks [B, 1, S, S, S]) -> (logits [B], f [B, 4 * feature_dim])."""

    def __init__(self, config: RoiCNNConfig):
        super().__init__()
        self.config = config
        w0 = config.widths[0]
        if config.stem not in STEMS:
            raise ModelError(f"ROI CNN config: unknown stem {config.stem!r} ({' or '.join(STEMS)}).")
        kernel = 7 if config.stem == "resnet18" else 3
        layers = [nn.Conv3d(config.in_channels, w0, kernel, config.stem_stride, kernel // 2, bias=False),
                  nn.BatchNorm3d(w0), nn.ReLU(inplace=True)]
        if config.stem == "resnet18":
            layers.append(nn.MaxPool3d(3, stride=2, padding=1))
        self.stem = nn.Sequential(*layers)
        stages, cin = [], w0
        for i, (width, n_blocks) in enumerate(zip(config.widths, config.blocks)):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(*[BasicBlock3d(cin if b == 0 else width, width, stride if b == 0 else 1)
                                          for b in range(n_blocks)]))
            cin = width
        self.stages = nn.ModuleList(stages)
        self.roi_fc = nn.ModuleList(nn.Sequential(RowwiseLinear(width, config.feature_dim), nn.ReLU(inplace=True))
                                    for width in config.widths)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = RowwiseLinear(config.f_dim, 1)

    def features(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """f: the concatenated per-stage ROI-GAP + FC vectors."""
        x = self.stem(images)
        parts = []
        for stage, fc in zip(self.stages, self.roi_fc):
            x = stage(x)
            parts.append(fc(roi_gap(x, masks)))
        return torch.cat(parts, dim=1)

    def forward(self, images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(images, masks)
        return self.classifier(self.dropout(f)).squeeze(1), f
