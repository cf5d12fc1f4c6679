"""Training on several processes or machines with torch.distributed, in the environment torchrun sets.

``torchrun --standalone --nproc-per-node N -m LNStagingLib.cli train TASK ... --distributed`` starts N ranks; each
reads RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT (gloo on the CPU, NCCL on GPUs). The trainers keep
their one-process loop and call four hooks: which patients of an optimiser step this rank computes (``owns``), the
gradient sum over ranks before the step (``sum_gradients``), the mean of the normalisation statistics after it
(``average_buffers``), and "only rank 0 writes" (``is_main``). The effective batch stays what the options say
(e.g. --accumulate 8 patients per step, split over the ranks), so N ranks train the same model as one process, up to
float rounding of the gradient sum.

Why not wrap the model in DistributedDataParallel: one patient is one graph of its own size, so ranks compute
different numbers of patients per step (4 patients on 3 ranks: 2, 1, 1); DDP reduces inside every backward and
would need Join and no_sync to express that. Reducing once per optimiser step is DDP's arithmetic without that
machinery (one flat all_reduce per step, as DDP's buckets do).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import LNStagingError

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def add_distributed_argument(parser) -> None:
    parser.add_argument("--distributed", action="store_true",
                        help="train on the ranks torchrun started (torch.distributed: gloo on CPU, NCCL on GPU); "
                             "see docs/SCALING.md")


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

    def owns(self, step: int, group_size: int) -> bool:
        """Whether this rank computes the patient at ``step`` of the epoch: within each optimiser step's group of
        ``group_size`` patients, positions are dealt round-robin over the ranks."""
        return (step % group_size) % self.world == self.rank

    def mine(self, items: list) -> list:
        """This rank's share of a list (for work that is only split, not summed: e.g. filling a cache)."""
        return items[self.rank::self.world]

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.barrier()

    def broadcast_parameters(self, model) -> None:
        """Every rank starts from rank 0's weights (they are equal already when seeds are; this makes it certain)."""
        if self.active:
            import torch.distributed as dist

            for tensor in list(model.parameters()) + list(model.buffers()):
                dist.broadcast(tensor.data, src=0)

    def sum_gradients(self, model) -> None:
        """Gradients summed over ranks (each rank's loss is already divided by the whole step's patient count).
        A parameter no rank touched keeps grad None, as in one process (Adam then leaves it alone)."""
        if not self.active:
            return
        import torch
        import torch.distributed as dist

        params = list(model.parameters())
        touched = torch.tensor([p.grad is not None for p in params], dtype=torch.float32,
                               device=params[0].device)
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
        dist.all_reduce(touched)
        dist.all_reduce(flat)
        offset = 0
        for p, used in zip(params, touched.tolist()):
            n = p.numel()
            p.grad = flat[offset:offset + n].view_as(p).clone() if used else None
            offset += n

    def average_buffers(self, model) -> None:
        """BatchNorm running statistics: the mean over ranks (each rank saw other patients; one process would have
        run them through one sequence, so these match one process approximately, not to the bit)."""
        if not self.active:
            return
        import torch.distributed as dist

        for buffer in model.buffers():
            if buffer.is_floating_point():
                dist.all_reduce(buffer.data)
                buffer.data /= self.world

    def sum_scalar(self, value: float) -> float:
        if not self.active:
            return value
        import torch
        import torch.distributed as dist

        tensor = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(tensor)
        return float(tensor.item())

    def close(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.barrier()
            dist.destroy_process_group()


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
    return ranks
