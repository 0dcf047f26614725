"""The data-parallel helpers (training/distributed.py): a world of one is a no-op, a real gloo
world of two sums and broadcasts across processes."""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn

from asrtune.training.distributed import Processes, distributed


def test_a_world_of_one_changes_nothing(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed() == (0, 1, 0)
    one = Processes(0, 1, torch.device("cpu"))
    model = nn.Linear(2, 2)
    assert one.main and one.wrap(model) is model
    assert isinstance(one.no_sync(model, sync=False), contextlib.nullcontext)
    assert one.all_sum(2.5) == 2.5 and one.broadcast_int(7) == 7
    one.barrier()  # returns without a process group
    assert one.comm_device() == torch.device("cpu")
    assert not Processes(1, 2, torch.device("cpu")).main


def _rank(rank: int, world: int, init_file: str, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        p = Processes(rank, world, torch.device("cpu"))
        total = p.all_sum(float(rank + 1))
        chosen = p.broadcast_int(41 if rank == 0 else rank)
        p.barrier()
        wrapped = p.wrap(nn.Linear(2, 1))
        with p.no_sync(wrapped, sync=False):
            wrapped(torch.ones(1, 2)).sum().backward()
        torch.save({"total": total, "chosen": chosen, "ddp": type(wrapped).__name__}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_ranks_sum_and_broadcast(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_rank, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    for rank in (0, 1):
        seen = torch.load(tmp_path / f"rank{rank}.pt")
        assert seen == {"total": 3.0, "chosen": 41, "ddp": "DistributedDataParallel"}
