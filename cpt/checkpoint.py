"""Sharded checkpoints of a cpt run (torch.distributed.checkpoint): model, optimizer and the run's state.

A step's checkpoint is written to a temporary folder and renamed when every rank has finished, so
a folder named `step-XXXXXX` is always complete; a killed run resumes from the newest one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

from .distributed import Ranks, broadcast


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest complete step checkpoint under `folder`, or None."""
    steps = sorted(folder.glob("step-[0-9]*")) if folder.exists() else []
    return steps[-1] if steps else None


def save_checkpoint(folder: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any],
                    ranks: Ranks, keep: int = 1) -> Path:
    """Write step `step` (every rank its shards, rank 0 the run state) and keep the newest `keep` checkpoints."""
    final = folder / f"step-{step:06d}"
    partial = folder / f".partial-step-{step:06d}"
    if ranks.main:
        shutil.rmtree(partial, ignore_errors=True)
    _barrier(ranks)
    model_state, optimizer_state = get_state_dict(model, optimizer)
    dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=str(partial))
    _barrier(ranks)
    if ranks.main:
        (partial / "state.json").write_text(json.dumps(state))
        partial.rename(final)
        for old in sorted(folder.glob("step-[0-9]*"))[:-keep]:
            shutil.rmtree(old)
    _barrier(ranks)
    return final


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, ranks: Ranks) -> dict[str, Any]:
    """Restore model and optimizer shards from `path`; return the run state saved with them."""
    model_state, optimizer_state = get_state_dict(model, optimizer)
    saved = {"model": model_state, "optimizer": optimizer_state}
    dcp.load(saved, checkpoint_id=str(path))
    set_state_dict(model, optimizer, model_state_dict=saved["model"], optim_state_dict=saved["optimizer"])
    return broadcast(json.loads((path / "state.json").read_text()) if ranks.main else None, ranks)


def _barrier(ranks: Ranks) -> None:
    if ranks.world > 1:
        dist.barrier()
