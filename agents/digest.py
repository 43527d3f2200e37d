"""What identifies a saved agent: a digest of what it acts by, not of its file's bytes.

A deterministic retrain (same data, seed and thread count) writes the same weights, but never the same file: torch's
archive names its records after the temporary file the save goes through, and the metadata records the wall-clock
training time. Model selection keys its scored episodes by this digest, so a checkpoint trained again, on this
machine or a fresh one, keeps the episodes it was scored on, while one whose weights changed is scored anew.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from dmix_gym.errors import ConfigError, MissingFileError
from dmix_gym.utils.atomic import sha256_file

WALL_CLOCK = ("train_seconds",)  # metadata that differs between two runs of the same training


def _settings_bytes(saved: dict[str, Any]) -> bytes:
    """A saved agent's settings as canonical JSON, without the wall-clock metadata."""
    meta = {k: v for k, v in saved.get("meta", {}).items() if k not in WALL_CLOCK}
    return json.dumps({**saved, "meta": meta}, sort_keys=True, default=str).encode()


def _tensor_bytes(tensor: torch.Tensor) -> bytes:
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    return f"{tensor.dtype}{tuple(tensor.shape)}".encode() + flat.view(torch.uint8).numpy().tobytes()


def saved_agent_digest(path: str | Path) -> str:
    """sha256 (hex) of a saved agent's weights and settings, without its wall-clock training time: a `.pt` agent
    (`agents.agent.TransformerAgent`), or a Decision Transformer's `.json` with the d3rlpy model it names. Any other
    file is digested as bytes."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no saved agent at {path}")
    digest = hashlib.sha256()
    if path.suffix == ".pt":
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # a truncated or foreign file: one line naming it, not torch's traceback
            raise ConfigError(f"{path} is not a readable saved agent ({type(error).__name__})") from error
        if not isinstance(payload, dict) or "state_dict" not in payload:
            raise ConfigError(f"{path} is not a saved dmix agent (no state_dict)")
        state = payload.pop("state_dict")
        digest.update(_settings_bytes(payload))
        for key in sorted(state):
            digest.update(key.encode() + _tensor_bytes(state[key]))
    elif path.suffix == ".json":
        saved = json.loads(path.read_text())
        model = path.parent / saved.get("model", "")
        if not model.is_file():
            raise MissingFileError(f"{path} names the model {model}, which is not there")
        digest.update(_settings_bytes(saved) + sha256_file(model).encode())
    else:
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()
