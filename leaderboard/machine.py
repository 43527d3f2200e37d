"""What a machine runs episodes with: the facts an official file records so that its numbers can be reproduced."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import numpy as np

from .protocol import EPISODE_THREADS


def _cpuinfo(key: str) -> str | None:
    """A field of the first processor in /proc/cpuinfo (Linux), or None."""
    path = Path("/proc/cpuinfo")
    lines = path.read_text(errors="replace").splitlines() if path.is_file() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.split(":", 1)[0].strip() == key), None)


def cpu_model() -> str:
    """The CPU's model name as the OS reports it, else what `platform` knows."""
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def vector_extensions() -> list[str]:
    """The CPU's SIMD and matrix extensions (AVX, AVX-512, AMX, FMA flags): what decides the kernels torch picks."""
    flags = (_cpuinfo("flags") or "").split()
    return sorted(f for f in flags if f.startswith(("avx", "amx", "fma")))


def run_environment(threads: int = EPISODE_THREADS) -> dict[str, Any]:
    """How episodes run on this machine: what an official file records and `reproduce` compares with."""
    import torch

    return {"cpu": cpu_model(), "vector_extensions": vector_extensions(),
            "cpu_kernels": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
            "numpy": np.__version__, "python": platform.python_version(), "threads_per_episode": threads}
