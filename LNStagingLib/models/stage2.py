"""The stage-2 classifier end to end: CNN over a patient's candidate patches -> (f, s) -> head -> logit per candidate.

Heads (Table 1 of paper 1): "cnn" (no graph: the CNN's own linear head, or an MLP on x = (f || T(s)) with spatial
priors), "gnnb" (GAT-weighted messages), "gnnp" (pair-fused messages, the proposed model). Ablation flags:
``use_pet`` (CT only vs CT + PET channels) and ``use_priors`` (with or without s). The patch settings and the prior
normalisation travel in the same flat config, so a checkpoint says exactly how its inputs must be made.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from ..candidates.patches import PatchConfig
from ..errors import ModelError
from .checkpoint import register_model
from .gnn import GNN_PRESETS, POSITION_PRIORS, GNNb, GNNConfig, GNNp, InstanceHead
from .roi_cnn import ROI_CNN_PRESETS, RoiCNN, RoiCNNConfig

ANGLE_PRIORS = ("tumor_elevation_deg", "tumor_azimuth_deg")  # priors/candidate_priors.py

HEADS = ("cnn", "gnnb", "gnnp")


@dataclass
class Stage2Config:
    preset: str = "small"
    head: str = "gnnp"
    use_pet: bool = True
    use_priors: bool = True
    # CNN
    widths: tuple[int, ...] = (8, 16, 32, 64)
    blocks: tuple[int, ...] = (1, 1, 1, 1)
    stem_stride: int = 2
    feature_dim: int = 32
    dropout: float = 0.0
    stem: str = "3x3"  # "resnet18" (the paper preset): 7x7x7 conv + max-pool (models/roi_cnn.py)
    # tumour angles (elevation, azimuth) into the graph head: z-scored degrees (earlier checkpoints), or "sincos":
    # sine and cosine of each angle, so that the azimuth does not jump at +-180 degrees
    angle_encoding: str = "degrees"
    # graph head
    t_dim: int = 80
    h_dim: int = 32
    msg_dim: int = 32
    aggregation: str = "mean"
    gat_heads: int = 4
    review_state: bool = False  # GNNp whose node input carries the review state (issue 19; gnn.py)
    decision_channel: bool = False  # and whose decided nodes send the explicit-feature message (gnn.py)
    # spatial priors s: names (in order) and the normalisation fitted on the training set
    prior_names: tuple[str, ...] = ()
    prior_mean: tuple[float, ...] = ()
    prior_std: tuple[float, ...] = ()
    # which priors had a value in some training case (empty in older checkpoints: then a prior whose fitted mean is
    # exactly 0 and sd exactly 1 -- the fallback of an all-missing column -- is taken as never seen). A prior the
    # network never saw enters as missing (the training mean) even when a scan provides it.
    prior_trained: tuple[bool, ...] = ()
    # patches
    patch_size: int = 48
    patch_spacing_mm: float = 1.0
    patch_margin: int = 8
    ct_window: tuple[float, ...] = (-200.0, 300.0)
    pet_clip: float = 20.0
    pet_scale: float = 5.0
    roi_radius_mm: float = 5.0
    patch_orientation: str = "lps"
    roi_source: str = "sphere"  # "sphere": every candidate's ROI is a sphere; "label": instance masks where given

    def __post_init__(self) -> None:
        if self.angle_encoding not in ("degrees", "sincos"):
            raise ModelError(f"Unknown angle encoding {self.angle_encoding!r}; use degrees or sincos.")
        if self.head not in HEADS:
            raise ModelError(f"Unknown stage-2 head {self.head!r}; choose one of {', '.join(HEADS)}.")
        if self.review_state and self.head != "gnnp":
            raise ModelError("The review-state input exists for the gnnp head only (--reveal-labels needs --head gnnp).")
        if self.use_priors and not self.prior_names:
            raise ModelError("A stage-2 model with spatial priors needs prior_names (use_priors=False otherwise).")
        if self.decision_channel and not self.review_state:
            raise ModelError("The decision channel needs the review-state input (--reveal-labels).")
        if self.decision_channel and self.use_priors and tuple(self.prior_names[:3]) != POSITION_PRIORS:
            raise ModelError(f"The decision channel reads the position priors {', '.join(POSITION_PRIORS)} first; "
                             f"this model's priors are {', '.join(self.prior_names)}.")

    @property
    def in_channels(self) -> int:
        return 2 if self.use_pet else 1

    def cnn_config(self) -> RoiCNNConfig:
        return RoiCNNConfig(in_channels=self.in_channels, widths=tuple(self.widths), blocks=tuple(self.blocks),
                            stem_stride=self.stem_stride, feature_dim=self.feature_dim, dropout=self.dropout,
                            stem=self.stem)

    def gnn_config(self) -> GNNConfig:
        return GNNConfig(f_dim=self.feature_dim * len(self.widths), prior_dim=len(self.prior_names) + len(
                             self.angle_columns()),
                         use_priors=self.use_priors, t_dim=self.t_dim, h_dim=self.h_dim, msg_dim=self.msg_dim,
                         aggregation=self.aggregation, gat_heads=self.gat_heads,
                         review_state=self.review_state, decision_channel=self.decision_channel)

    def angle_columns(self) -> list[int]:
        """Columns of prior_names encoded as (sin, cos) (none unless angle_encoding is "sincos")."""
        if self.angle_encoding != "sincos":
            return []
        return [i for i, name in enumerate(self.prior_names) if name in ANGLE_PRIORS]

    def patch_config(self) -> PatchConfig:
        return PatchConfig(size=self.patch_size, spacing_mm=self.patch_spacing_mm, margin=self.patch_margin,
                           ct_window=tuple(self.ct_window), pet_clip=self.pet_clip, pet_scale=self.pet_scale,
                           roi_radius_mm=self.roi_radius_mm, orientation=self.patch_orientation)


def stage2_config(preset: str = "small", **overrides) -> Stage2Config:
    """A configuration from the "paper", "small" or "tiny" preset, with overrides (head, use_pet, prior_names...)."""
    if preset not in ROI_CNN_PRESETS:
        raise ModelError(f"Unknown preset {preset!r}; choose one of {', '.join(ROI_CNN_PRESETS)}.")
    values = {"preset": preset, **ROI_CNN_PRESETS[preset], **GNN_PRESETS[preset], **overrides}
    return Stage2Config(**values)


@register_model("stage2", Stage2Config)
class Stage2Model(nn.Module):
    """forward(images [N, C, S, S, S], masks [N, 1, S, S, S], priors [N, P] | None) -> logits [N] of ONE patient.

    ``images`` may carry more channels than the model uses (CT+PET patches for a CT-only model): extra are dropped.
    ``priors`` are raw values in the order of config.prior_names; normalisation is applied inside.
    """

    def __init__(self, config: Stage2Config):
        super().__init__()
        self.config = config
        self.cnn = RoiCNN(config.cnn_config())
        gnn_config = config.gnn_config()
        if config.head == "gnnp":
            self.head = GNNp(gnn_config)
        elif config.head == "gnnb":
            self.head = GNNb(gnn_config)
        elif config.use_priors:
            self.head = InstanceHead(gnn_config)
        else:
            self.head = None  # CNN baseline: the CNN's own classifier
        p = len(config.prior_names)
        mean = torch.tensor(config.prior_mean or [0.0] * p, dtype=torch.float32)
        std = torch.tensor(config.prior_std or [1.0] * p, dtype=torch.float32)
        self.register_buffer("prior_mean", mean, persistent=False)
        self.register_buffer("prior_std", std.clamp_min(1e-6), persistent=False)
        trained = (torch.tensor([bool(t) for t in config.prior_trained], dtype=torch.bool) if config.prior_trained
                   else ~((mean == 0.0) & (std == 1.0)))
        self.register_buffer("prior_trained", trained, persistent=False)

    def select_channels(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] < self.config.in_channels:
            raise ModelError("This model needs CT and PET patches, but no PET was given: supply the PET image "
                             "or use a CT-only model.")
        return images[:, : self.config.in_channels]

    def features(self, images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(CNN logits [B], f [B, f_dim]) for a batch of candidates (any patients: the CNN is per candidate)."""
        return self.cnn(self.select_channels(images), masks)

    def head_logits(self, cnn_logits: torch.Tensor, f: torch.Tensor, priors: Optional[torch.Tensor],
                    review: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Logits of ONE patient's candidates from their CNN outputs and raw priors; ``review`` [N] (1 accepted,
        0 rejected, -1 unknown) for a review-state model (None: nothing decided)."""
        if review is not None and not self.config.review_state:
            raise ModelError("This stage-2 model was trained without review states; it cannot re-score from decisions.")
        if self.head is None:
            return cnn_logits
        s = None
        if self.config.use_priors:
            if priors is None:
                raise ModelError("This model uses spatial priors: compute them for the candidates first.")
            # A prior that could not be computed (NaN, e.g. no tumour mask) enters as the training mean.
            s = torch.nan_to_num((priors.to(f.dtype) - self.prior_mean) / self.prior_std, nan=0.0)
            s = torch.where(self.prior_trained, s, torch.zeros_like(s))
            s = self.encode_angles(s, priors.to(f.dtype))
        if self.config.review_state:
            return self.head(f, s, review)
        return self.head(f, s)

    def encode_angles(self, s: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        """With angle_encoding "sincos": each angle column holds its sine, its cosine is appended (a missing or
        never-trained angle gives 0 and 0)."""
        columns = self.config.angle_columns()
        if not columns:
            return s
        radians = torch.deg2rad(raw[:, columns])
        known = torch.isfinite(radians) & self.prior_trained[columns]
        sine = torch.where(known, torch.sin(torch.nan_to_num(radians)), torch.zeros_like(radians))
        cosine = torch.where(known, torch.cos(torch.nan_to_num(radians)), torch.zeros_like(radians))
        s = s.clone()
        s[:, columns] = sine
        return torch.cat([s, cosine], dim=1)

    def forward(self, images: torch.Tensor, masks: torch.Tensor, priors: Optional[torch.Tensor] = None,
                review: Optional[torch.Tensor] = None) -> torch.Tensor:
        cnn_logits, f = self.features(images, masks)
        return self.head_logits(cnn_logits, f, priors, review)


def describe(config: Stage2Config) -> dict:
    """A JSON-friendly summary (for logs and model cards)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(config).items()}


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["Stage2Config", "Stage2Model", "stage2_config", "HEADS", "describe", "parameter_count"]
