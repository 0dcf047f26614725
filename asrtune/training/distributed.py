"""Data parallel plumbing: which process this is, and the few collectives the loop needs.

Started by ``torchrun`` or ``accelerate launch`` (``WORLD_SIZE`` > 1) every process runs the same
loop; :func:`distributed` joins the process group (gloo on CPU, nccl on CUDA) and
:class:`Processes` wraps the model in DistributedDataParallel and sums, broadcasts and waits
across ranks. In a world of one every call is a no-op that returns its input.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from asrtune.errors import ConfigError


def distributed() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)``, initialising torch.distributed under torchrun/accelerate."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))


@dataclass(frozen=True)
class Processes:
    """This process's place in the run (``rank`` of ``world``) and the device it trains on."""

    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        """Rank 0 alone evaluates and writes."""
        return self.rank == 0

    def wrap(self, model: nn.Module) -> nn.Module:
        """``model`` itself, or in a world of several its DistributedDataParallel wrapper."""
        if self.world <= 1:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=False)

    def no_sync(self, ddp_model: nn.Module, sync: bool) -> contextlib.AbstractContextManager:
        """Skip the gradient all-reduce on every micro-batch but the step's last (``sync``)."""
        if self.world > 1 and not sync:
            return ddp_model.no_sync()
        return contextlib.nullcontext()

    def comm_device(self) -> torch.device:
        """Where collective tensors live: the GPU under nccl, the CPU under gloo."""
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    def all_sum(self, value: float) -> float:
        """``value`` summed over every rank."""
        if self.world <= 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.comm_device())
        dist.all_reduce(t)
        return float(t.item())

    def broadcast_int(self, value: int) -> int:
        """Rank 0's ``value`` on every rank."""
        if self.world <= 1:
            return value
        t = torch.tensor([value], dtype=torch.long, device=self.comm_device())
        dist.broadcast(t, src=0)
        return int(t.item())

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.world > 1:
            dist.barrier()


def pick_device(requested: str, local_rank: int) -> torch.device:
    """``--device``: ``auto`` is this rank's GPU when CUDA is there, else the CPU."""
    if requested == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available here")
    return device
