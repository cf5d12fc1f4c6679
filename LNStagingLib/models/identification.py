"""Stage-1 instance identification (paper 2, sec. III-A 2): is a segmented LN instance positive or negative?

The paper reuses the trained segmentation backbone, initialised from its weights, with a new classification head,
fine-tuned with cross entropy on patches centred on each instance. Here: the U-Net's encoder (same config, weights
copied by ``from_segmentation``) on a patch centred on the instance; at the deepest stage, the features averaged
over the whole patch and over the instance's own mask (downsampled) are concatenated and classified by a small MLP.
The mask pooling says which of possibly several nodes in the patch is meant.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import register_model
from .seg_inputs import channel_pad_values
from .unet import AttentionUNet, UNetConfig, UNetEncoder, samples_per_call

ID_PATCH = {"paper": (80, 96, 96), "small": (32, 48, 48), "tiny": (16, 32, 32)}


@dataclass
class IdentifierConfig(UNetConfig):
    """The segmentation network's config (so the encoder matches) plus the identification patch and head size."""

    id_patch_size: tuple[int, int, int] = (80, 96, 96)
    id_hidden: int = 128

    def __post_init__(self) -> None:
        super().__post_init__()
        self.id_patch_size = tuple(int(p) for p in self.id_patch_size)


def identifier_config(seg_config: UNetConfig, **overrides) -> IdentifierConfig:
    """Identifier config matching a trained segmentation network's config."""
    fields = dataclasses.asdict(seg_config)
    fields = {k: v for k, v in fields.items() if k in {f.name for f in dataclasses.fields(UNetConfig)}}
    fields["id_patch_size"] = ID_PATCH.get(seg_config.preset, ID_PATCH["paper"])
    fields["id_hidden"] = 128 if seg_config.preset == "paper" else 32
    return IdentifierConfig(**(fields | overrides))


@register_model("ln_instance_identifier", IdentifierConfig)
class InstanceIdentifier(nn.Module):
    """forward(x [B, C, *id_patch], mask [B, 1, *id_patch]) -> logits [B, 2] (1 = positive LN)."""

    def __init__(self, config: IdentifierConfig):
        super().__init__()
        self.config = config
        self.encoder = UNetEncoder(config)
        width = config.features[-1]
        self.head = nn.Sequential(nn.Linear(2 * width, config.id_hidden), nn.LeakyReLU(config.negative_slope),
                                  nn.Linear(config.id_hidden, 2))

    @classmethod
    def from_segmentation(cls, segmentation: AttentionUNet, **overrides) -> "InstanceIdentifier":
        """A new identifier whose encoder starts from the trained segmentation network's encoder."""
        model = cls(identifier_config(segmentation.config, **overrides))
        model.encoder.load_state_dict(segmentation.encoder.state_dict())
        return model

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x)[-1]
        grid = features.shape[2:]
        roi = F.adaptive_max_pool3d(mask.to(features.dtype), grid)
        pooled_roi = (features * roi).sum(dim=(2, 3, 4)) / roi.sum(dim=(2, 3, 4)).clamp_min(1.0)
        pooled_all = features.mean(dim=(2, 3, 4))
        return self.head(torch.cat([pooled_all, pooled_roi], dim=1))


def instance_patch(channels: np.ndarray, labels: np.ndarray, instance_id: int, patch: tuple[int, int, int],
                   pad_values: list[float], box: tuple[slice, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(x [C, *patch], mask [1, *patch]) centred on the instance's bounding-box centre; outside the image is padded.

    ``box``: the instance's bounding box as ndimage.find_objects gives it (found here when not given). A box, not
    the list of the instance's voxels: a large instance's voxel coordinates took gigabytes (issue 32)."""
    if box is None:
        box = ndimage.find_objects(labels, max_label=instance_id)[instance_id - 1]
    if box is None:
        raise ValueError(f"Instance {instance_id} is not in the label map.")
    centre = np.array([(s.start + s.stop - 1) // 2 for s in box])
    starts = [int(c) - p // 2 for c, p in zip(centre, patch)]
    x = np.stack([np.full(patch, v, np.float32) for v in pad_values])
    mask = np.zeros((1, *patch), np.float32)
    src, dst = [], []
    for start, p, size in zip(starts, patch, labels.shape):
        lo, hi = max(start, 0), min(start + p, size)
        src.append(slice(lo, hi))
        dst.append(slice(lo - start, hi - start))
    x[(slice(None), *dst)] = channels[(slice(None), *src)]
    mask[(0, *dst)] = labels[tuple(src)] == instance_id
    return x, mask


def identify_instances(model: InstanceIdentifier, channels: np.ndarray, labels: np.ndarray,
                       batch_size: int | None = None, progress=None) -> dict[int, float]:
    """Positive probability of every instance id in ``labels`` [z, y, x] (channels [C, z, y, x] normalised).

    Instances go through the network ``batch_size`` at a time (default: 8, fewer for large patches within
    unet.samples_per_call's memory budget)."""
    if batch_size is None:
        batch_size = samples_per_call(model.config, model.config.id_patch_size, 8)
    boxes = ndimage.find_objects(labels)  # every instance's bounding box in one pass (None: no such id)
    ids = [i + 1 for i, box in enumerate(boxes) if box is not None]
    pad = channel_pad_values(model.config)
    out: dict[int, float] = {}
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(ids), batch_size):
            if progress is not None:
                progress.step(start / max(len(ids), 1), f"identifying instance {start + 1}/{len(ids)}")
            chunk = ids[start:start + batch_size]
            pairs = [instance_patch(channels, labels, i, model.config.id_patch_size, pad, boxes[i - 1]) for i in chunk]
            x = torch.from_numpy(np.stack([p[0] for p in pairs]))
            m = torch.from_numpy(np.stack([p[1] for p in pairs]))
            prob = torch.softmax(model(x, m), dim=1)[:, 1]
            out.update({i: float(p) for i, p in zip(chunk, prob)})
    return out
