"""Training on several processes or machines with torch.distributed, in the environment torchrun sets.

``torchrun --nproc-per-node N -m LNStagingLib.cli train TASK ...`` (with or without --distributed) starts N ranks;
each reads RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT and joins the process group (gloo on the CPU,
NCCL on GPUs). The trainers keep their one-process loop; this module gives them what changes with N ranks:

- ``wrap``: the model in torch's DistributedDataParallel, which averages the gradients over the ranks in the
  backward pass (``no_sync`` for the micro-steps of gradient accumulation: one all-reduce per optimiser step).
- ``share`` / ``micro_steps``: which patients of an optimiser step this rank computes, and with what loss scale,
  so that DDP's average equals the one-process loss of the whole step (effective batch = the options' batch, split
  over the ranks, not multiplied by them).
- ``sync_batch_norm`` and ``sum_over_ranks``: statistics that one process takes over the whole batch (BatchNorm,
  the batch Tversky index) taken over all ranks' shares, differentiably, so the gradients are the same.
- ``SequentialStatistics``: BatchNorm running statistics of a model whose batch is one patient (stage 2), which one
  process updates patient after patient, rebuilt after every step from the ranks' shares.
- ``is_main``, ``barrier``, ``sum_scalar``, ``close``: rank 0 alone validates and writes checkpoints and logs; the
  others wait for its files at the end. Resuming reads the same *_last.pt on every rank.

What is not exact: float rounding (sums in another order), which Adam can amplify on parameters whose gradient is
zero in exact arithmetic (a convolution bias before InstanceNorm); dropout > 0 would draw other masks on each rank
(every preset has dropout 0).
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
from dataclasses import dataclass

from ..errors import LNStagingError

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def add_distributed_argument(parser) -> None:
    parser.add_argument("--distributed", action="store_true",
                        help="train on the ranks torchrun started (torch DistributedDataParallel: gloo on CPU, NCCL "
                             "on GPU; automatic when started under torchrun); see docs/SCALING.md")


@dataclass
class Ranks:
    """This process's place among the training processes (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, device: str) -> str:
        """One GPU per rank on a node; the CPU stays the CPU."""
        return f"cuda:{self.local_rank}" if device.startswith("cuda") and self.active else device

    # ---- who computes what ---------------------------------------------------------------------------------------
    def share(self, items: list) -> list:
        """This rank's share of a list, dealt round-robin (patients of a step, cases of a cache to fill)."""
        return items[self.rank::self.world]

    def micro_steps(self, group: list) -> list[tuple[object, float]]:
        """(item, loss weight) pairs this rank runs for one optimiser step of ``group`` (one forward each).

        Every rank must run as many backward passes per step as the others (DDP reduces in the last one), so a rank
        whose share is shorter pads with the group's first item at weight 0: it adds nothing to the gradient. The
        weight ``world`` undoes DDP's division by the number of ranks: the caller divides its loss by the step's
        size as one process would, and DDP's mean over ranks becomes the one-process sum."""
        mine = [(item, float(self.world)) for item in self.share(group)]
        return mine + [(group[0], 0.0)] * (math.ceil(len(group) / self.world) - len(mine))

    @staticmethod
    def reducing(model, last: bool):
        """Context of one micro-step's forward and backward: DDP's no_sync() except on the step's last one."""
        if last or not hasattr(model, "no_sync"):
            return contextlib.nullcontext()
        return model.no_sync()

    # ---- the model -----------------------------------------------------------------------------------------------
    def wrap(self, model, *, find_unused_parameters: bool = False, sync_buffers: bool = True):
        """The model in DistributedDataParallel (itself when not distributed). DDP broadcasts rank 0's weights at
        construction, so every rank starts alike. ``sync_buffers``: DDP broadcasts rank 0's buffers before every
        forward (right when the buffers are synchronised statistics, wrong when each rank keeps its own);
        ``find_unused_parameters`` only for models with parameters the loss never reaches (DDP would wait for
        their gradients)."""
        if not self.active:
            return model
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.local_rank] if next(model.parameters()).is_cuda else None
        return DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=find_unused_parameters,
                                       forward_sync_buffers=sync_buffers)

    def sync_batch_norm(self, model):
        """BatchNorm layers that normalise with the statistics of the whole batch, all ranks' shares together, as
        one process would: torch's SyncBatchNorm on GPUs; on the CPU (where torch's needs CUDA kernels) a
        BatchNorm whose sums go through torch.distributed.nn's differentiable all_reduce."""
        if not self.active:
            return model
        import torch

        if next(model.parameters()).is_cuda:
            return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        from .sync_batch_norm import convert_to_cpu_sync

        return convert_to_cpu_sync(model)

    def sum_over_ranks(self, tensor):
        """The sum of a tensor over the ranks, with gradient (for statistics one process takes over the batch)."""
        return differentiable_sum(tensor) if self.active else tensor

    # ---- coordination --------------------------------------------------------------------------------------------
    def barrier(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.barrier()

    def sum_scalar(self, value: float) -> float:
        if not self.active:
            return value
        import torch
        import torch.distributed as dist

        device = f"cuda:{self.local_rank}" if dist.get_backend() == "nccl" else "cpu"  # NCCL: GPU tensors only
        tensor = torch.tensor([value], dtype=torch.float64, device=device)
        dist.all_reduce(tensor)
        return float(tensor.item())

    def close(self) -> None:
        """End of a training: every rank waits until rank 0 has written its files (the process group stays for a
        next training in the same processes and is destroyed at exit)."""
        self.barrier()


class SequentialStatistics:
    """BatchNorm running statistics of a step whose patients are forwarded one at a time (stage 2: the batch is
    one patient), as one process has them after running the step's patients in order, when each rank ran only
    its own. A running statistic is linear in the batch statistics: after patients 0..G-1 it is
    (1-m)^G r0 + sum_i (1-m)^(G-1-i) m x_i; each rank records m x_i of its patients (the change one forward makes
    from r0) and the sum goes over the ranks once per step."""

    def __init__(self, model, ranks: Ranks):
        from torch.nn.modules.batchnorm import _BatchNorm

        self.ranks = ranks
        self.layers = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
        if any(layer.momentum is None for layer in self.layers):
            raise ValueError("cumulative BatchNorm averages (momentum None) are not supported with several ranks")

    def begin(self, group_size: int) -> None:
        self.size = group_size
        self.start = [(layer.running_mean.clone(), layer.running_var.clone(), int(layer.num_batches_tracked))
                      for layer in self.layers]
        self.added = [(mean.new_zeros(mean.shape), var.new_zeros(var.shape)) for mean, var, _ in self.start]

    def record(self, position: int) -> None:
        """After this rank's forward of the patient at ``position`` of the step: keep its term, restore r0."""
        for layer, (mean0, var0, _), (mean_sum, var_sum) in zip(self.layers, self.start, self.added):
            m = layer.momentum
            decay = (1 - m) ** (self.size - 1 - position)
            mean_sum += decay * (layer.running_mean - (1 - m) * mean0)
            var_sum += decay * (layer.running_var - (1 - m) * var0)
            layer.running_mean.copy_(mean0)
            layer.running_var.copy_(var0)

    def end(self) -> None:
        """The statistics after the whole step, equal on every rank."""
        import torch.distributed as dist

        for layer, (mean0, var0, count0), (mean_sum, var_sum) in zip(self.layers, self.start, self.added):
            if self.ranks.active:
                dist.all_reduce(mean_sum)
                dist.all_reduce(var_sum)
            m = layer.momentum
            layer.running_mean.copy_((1 - m) ** self.size * mean0 + mean_sum)
            layer.running_var.copy_((1 - m) ** self.size * var0 + var_sum)
            layer.num_batches_tracked.fill_(count0 + self.size)


def differentiable_sum(tensor):
    """torch.distributed.nn's all_reduce (sum over the ranks; its backward sums the gradients over the ranks).
    torch 2.13 marks it deprecated (a FutureWarning pointing to the private _functional_collectives); it is still
    the public differentiable collective, so it is kept and its warning silenced."""
    import warnings

    from torch.distributed.nn.functional import all_reduce

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return all_reduce(tensor)


def start(requested: bool, device: str = "cpu") -> Ranks:
    """The ranks of this run: from torchrun's environment when it is set (with or without --distributed), one
    process otherwise; --distributed without that environment is a user error with the command to use."""
    present = all(name in os.environ for name in TORCHRUN_VARIABLES)
    if not present:
        if requested:
            raise LNStagingError("--distributed needs the environment torchrun sets (RANK, WORLD_SIZE, MASTER_ADDR, "
                                 "MASTER_PORT): start with `torchrun --standalone --nproc-per-node N -m "
                                 "LNStagingLib.cli train ... --distributed` (docs/SCALING.md).")
        return Ranks()
    ranks = Ranks(rank=int(os.environ["RANK"]), world=int(os.environ["WORLD_SIZE"]),
                  local_rank=int(os.environ.get("LOCAL_RANK", 0)))
    if ranks.active:
        import torch
        import torch.distributed as dist

        backend = "nccl" if device.startswith("cuda") else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(ranks.local_rank)
        if not dist.is_initialized():
            dist.init_process_group(backend=backend, rank=ranks.rank, world_size=ranks.world)
            atexit.register(dist.destroy_process_group)
    return ranks


def main_process() -> bool:
    """Whether this process prints the final messages: rank 0 of torchrun's ranks, or the only process."""
    return int(os.environ.get("RANK", "0")) == 0
