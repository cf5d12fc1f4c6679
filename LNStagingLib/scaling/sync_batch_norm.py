"""BatchNorm over the batch of all ranks on the CPU (gloo): torch's SyncBatchNorm needs CUDA kernels.

The batch's sums go through torch.distributed.nn's differentiable all_reduce (ddp.differentiable_sum), so the backward pass carries each
rank's share of the gradient to the others as the whole-batch BatchNorm of one process would.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from .ddp import differentiable_sum as all_reduce


class CpuSyncBatchNorm(torch.nn.modules.batchnorm._BatchNorm):
    """Training: mean and biased variance over every rank's share of the batch (two passes, as BatchNorm); the
    running statistics get the unbiased variance, as torch's. Evaluation: ordinary BatchNorm with the running
    statistics. Same parameter and buffer names as BatchNorm (checkpoints load into either)."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = all_reduce(x.new_tensor(float(x.numel() // x.shape[1])))
        mean = all_reduce(x.sum(dims)) / count
        centred = x - mean.view(shape)
        var = all_reduce((centred * centred).sum(dims)) / count
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * count / (count - 1).clamp_min(1), alpha=m)
        return y


def convert_to_cpu_sync(module: torch.nn.Module) -> torch.nn.Module:
    """Every BatchNorm*d of ``module`` replaced by a CpuSyncBatchNorm with the same weights and statistics."""
    if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
        synced = CpuSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                  module.track_running_stats)
        synced.load_state_dict(module.state_dict())
        return synced.train(module.training).to(next(module.parameters(), torch.empty(0)).device)
    for name, child in module.named_children():
        setattr(module, name, convert_to_cpu_sync(child))
    return module
