"""The process group of a torchrun launch (or of a single plain process), and the few collectives cpt needs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> Ranks:
    """Join torchrun's process group (NCCL on GPU, gloo on CPU); a plain process is a group of one."""
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(29500 + os.getpid() % 1000))
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        target = torch.device("cuda", local)
    else:
        target = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", rank=rank, world_size=world, device_id=target if use_cuda else None)
    return Ranks(rank, world, target)


def close_distributed() -> None:
    """Leave the process group together: a rank that tears its connections down while another still uses them can
    abort that rank (gloo ends it with SIGABRT), so every rank first waits for all to finish."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def wait_for_main(ranks: Ranks, hours: float = 12.0) -> None:
    """A barrier on a gloo group with a long timeout: other ranks wait while rank 0 does one-off work."""
    if ranks.world > 1:
        group = dist.new_group(backend="gloo", timeout=timedelta(hours=hours))
        dist.barrier(group=group)
        dist.destroy_process_group(group)


def broadcast(value: Any, ranks: Ranks) -> Any:
    """Rank 0's `value` on every rank (any picklable object)."""
    if ranks.world == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_sum(arrays: list[np.ndarray], ranks: Ranks) -> list[np.ndarray]:
    """Element-wise sums over ranks of float arrays (float64 on the wire)."""
    if ranks.world == 1:
        return arrays
    flat = torch.from_numpy(np.concatenate([np.ravel(a) for a in arrays]).astype(np.float64))
    flat = flat.to(ranks.device)
    dist.all_reduce(flat)
    flat = flat.cpu().numpy()
    out, start = [], 0
    for a in arrays:
        out.append(flat[start : start + a.size].reshape(a.shape))
        start += a.size
    return out
