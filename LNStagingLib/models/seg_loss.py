"""Stage-1 loss: cross entropy + Tversky (paper eq. 3-5) at every deep-supervision scale.

Paper eq. 3 writes the Tversky index as 2TP / (2TP + alpha FP + beta FN) with alpha = 0.5, beta = 1.5, i.e.
TP / (TP + alpha/2 FP + beta/2 FN): MONAI's TverskyLoss (TP / (TP + a FP + b FN)) with a = 0.25, b = 0.75
(a + b = 1, Tversky's own convention). We keep the paper's alpha/beta in the arguments and halve them for MONAI.
Targets of the coarser outputs are the label map downsampled by nearest neighbour (nnU-Net); weights 1/2^k,
normalised to sum to 1.

With several training ranks (scaling/ddp.py) each holds a share of the batch: ``sum_over_ranks`` sums the Tversky
index's TP/FP/FN over the ranks (differentiably), so every rank's loss has the whole batch's index, as one process;
the cross entropy is each rank's mean, which DDP's gradient average makes the batch mean (equal shares).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.losses import TverskyLoss
from monai.losses.utils import compute_tp_fp_fn
from monai.networks import one_hot
from torch import nn


def deep_supervision_weights(n: int) -> list[float]:
    raw = [1.0 / 2 ** k for k in range(n)]
    return [w / sum(raw) for w in raw]


class SegmentationLoss(nn.Module):
    """L_SEG = L_CE + L_T (eq. 5), summed over deep-supervision outputs with decreasing weights."""

    def __init__(self, alpha: float = 0.5, beta: float = 1.5, sum_over_ranks=None):
        super().__init__()
        self.tversky = TverskyLoss(to_onehot_y=True, softmax=True, include_background=False,
                                   alpha=alpha / 2.0, beta=beta / 2.0, batch=True)
        self.sum_over_ranks = sum_over_ranks

    def single(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss of one output; ``target`` is [B, 1, ...] integer class labels on the output's grid."""
        ce = F.cross_entropy(logits, target[:, 0].long())
        if self.sum_over_ranks is None:
            return ce + self.tversky(logits, target)
        return ce + self.tversky_over_ranks(logits, target)

    def tversky_over_ranks(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """MONAI's batch Tversky loss (same settings, same formula) with TP/FP/FN summed over the ranks' shares."""
        t = self.tversky
        probs = torch.softmax(logits, 1)[:, 1:]
        onehot = one_hot(target, num_classes=logits.shape[1])[:, 1:]
        tp, fp, fn = compute_tp_fp_fn(probs, onehot, [0, *range(2, logits.dim())], 1, False, False)
        tp, fp, fn = (self.sum_over_ranks(v) for v in (tp, fp, fn))
        score = 1.0 - (tp + t.smooth_nr) / (tp + t.alpha * fp + t.beta * fn + t.smooth_dr)
        return score.mean()

    def forward(self, outputs, target: torch.Tensor) -> torch.Tensor:
        if isinstance(outputs, torch.Tensor):
            outputs = [outputs]
        weights = deep_supervision_weights(len(outputs))
        total = outputs[0].new_zeros(())
        for weight, logits in zip(weights, outputs):
            scaled = target if logits.shape[2:] == target.shape[2:] else \
                F.interpolate(target.float(), size=logits.shape[2:], mode="nearest-exact")
            total = total + weight * self.single(logits, scaled)
        return total
