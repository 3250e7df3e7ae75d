"""Everything the trainer does with the process group, in one place: set-up, the broadcasts of rank 0's
choices, the gathering of every rank's RNG state, agreeing to stop, barriers and the tear-down.

One process (``python -m train``) is a world of one: every method is then a no-op that returns its own
value, so the loop reads the same with and without ``torchrun``. Under ``torchrun`` each process has one GPU
(NCCL), or the CPU (gloo).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from pix2pix import resolve_device

#: Under DDP a Ctrl-C is agreed on every this many steps (an all-reduce each time), and at every epoch's start.
STOP_CHECK_EVERY = 10


@dataclass(frozen=True)
class Dist:
    """This process's place in the run: its rank, the world size and its device."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def master(self) -> bool:
        """Rank 0: the process that writes the run folder and prints."""
        return self.rank == 0

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value``, on every rank (a choice that must be the same everywhere: precision, the plan)."""
        if self.world == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list:
        """Every rank's ``value``, in rank order, on every rank (the RNG states a checkpoint holds)."""
        if self.world == 1:
            return [value]
        values = [None] * self.world
        dist.all_gather_object(values, value)
        return values

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` summed over the ranks (in place)."""
        if self.world > 1:
            dist.all_reduce(tensor)
        return tensor

    def agree_to_stop(self, requested: bool, step: int, sync: bool = False) -> bool:
        """Whether to stop now: when any rank was asked to. Under DDP the ranks agree every
        ``STOP_CHECK_EVERY`` steps and whenever ``sync`` (in between, the answer is no)."""
        if self.world == 1:
            return requested
        if not (sync or step % STOP_CHECK_EVERY == 0):
            return False
        flag = torch.tensor([int(requested)], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def ddp(self) -> Callable[[torch.nn.Module], torch.nn.Module] | None:
        """What wraps a network for data-parallel training, or None in a world of one."""
        if self.world == 1:
            return None
        ids = [self.device.index] if self.device.type == "cuda" else None
        return lambda module: DDP(module, device_ids=ids)

    def destroy(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def setup(device: str) -> Dist:
    """This process's ``Dist``. Under torchrun (``WORLD_SIZE`` > 1): NCCL with one GPU per process (its
    ``LOCAL_RANK``), else gloo on the CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    try:
        where = resolve_device(device)
    except ValueError as e:
        raise SystemExit(f"error: --device: {e}") from None
    if world == 1:
        return Dist(0, 1, where)
    if where.type == "cuda":
        where = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(where)
    elif where.type != "cpu":
        where = torch.device("cpu")
    dist.init_process_group("nccl" if where.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), world, where)
