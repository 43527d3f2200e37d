"""Pinning torch's intra-op thread count around a piece of work, so its float results do not depend on the machine.

A matmul split over n threads sums its partial products in another order than over m threads, and on some CPUs
(measured on an AVX-512 Xeon) that moves an episode's score by ~1e-3. Work whose numbers must repeat anywhere, such
as an episode of the env, runs with a fixed thread count; parallelism comes from running several of them side by side.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

from ..errors import ConfigError


def check_threads(threads: int | None) -> int | None:
    """`threads` itself when it is None or a positive int; a one-line error naming it otherwise."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"threads must be a positive integer or None, got {threads!r}")
    return threads


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with `threads` intra-op torch threads, then restore the previous count (None: leave it alone)."""
    if check_threads(threads) is None or threads == torch.get_num_threads():
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
