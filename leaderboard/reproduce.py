"""Re-running a protocol's official episodes on this machine, to show its numbers are reproducible.

An official file records how its episodes ran (`run_environment`: the CPU, its vector kernels, the torch and numpy
versions, the threads per episode). `reproduce` re-runs a shipped row's stored (task, seed) episodes here, with the
same policy, and returns each one's difference from the stored score. With the same kernels and threads per episode
the difference is float noise (~1e-15); other kernels (AVX2 against AVX-512) round matmuls otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import zip_longest
from typing import Any, Iterator

from dmix_gym.errors import ConfigError

from .episodes import run_episodes
from .official import load_official, ranking_objective
from .protocol import Protocol
from .registry import resolve_policy


@dataclass(frozen=True)
class Reproduced:
    """One stored episode re-run here: its stored score, the score here and their difference."""

    task: str
    seed: int
    stored: float
    here: float

    @property
    def difference(self) -> float:
        return self.here - self.stored


def shipped_row(version: str, row: str) -> dict[str, Any]:
    """The official file's submission named `row`; a one-line error listing the names when there is none."""
    official = load_official(version)
    if official is None:
        raise ConfigError(f"protocol {version} ships no official results to reproduce")
    rows = {s["name"]: s for s in official["submissions"]}
    if row not in rows:
        raise ConfigError(f"protocol {version} ships no row {row!r}; its rows: {', '.join(sorted(rows))}")
    return rows[row]


def spread(episodes: list[dict[str, Any]], n: int | None) -> list[dict[str, Any]]:
    """`n` of a row's episodes (all with None), taking each task's in turn so a few cover every task."""
    by_task: dict[str, list[dict[str, Any]]] = {}
    for e in episodes:
        by_task.setdefault(e["task"], []).append(e)
    ordered = [e for turn in zip_longest(*by_task.values()) for e in turn if e is not None]
    return ordered if n is None else ordered[:n]


def reproduce(protocol: Protocol, row: str, episodes: int | None = None, workers: int = 1, data_dir=None,
              cache_dir=None, progress: bool = True) -> Iterator[Reproduced]:
    """Re-run `episodes` of a shipped row's stored episodes (all with None) here; yield each as it ends.

    The row's policy is loaded from its spec; a policy whose fingerprint differs from the shipped one (its code or
    file changed since) is refused, since its episodes would differ for that reason alone.
    """
    shipped = shipped_row(protocol.version, row)
    policy, fingerprint = resolve_policy(shipped["policy"])
    if fingerprint != shipped["fingerprint"]:
        raise ConfigError(f"row {row!r}'s policy {shipped['policy']} has fingerprint {fingerprint} here but "
                          f"{shipped['fingerprint']} in the official file: it changed since the row ran")
    chosen = spread(shipped["episodes"], episodes)
    tasks = {t.name: t for t in protocol.tasks}
    envs = {}
    for name in dict.fromkeys(e["task"] for e in chosen):
        envs[name] = tasks[name].make_env(data_dir, cache_dir, progress=progress)
        policy.prepare(envs[name], progress=progress)  # one-off fits, as the submission made them
    jobs = [(policy if workers <= 1 else shipped["policy"], tasks[e["task"]], e["seed"]) for e in chosen]
    for index, record in run_episodes(jobs, ranking_objective(protocol), envs, workers, data_dir, cache_dir, vector=0):
        yield Reproduced(chosen[index]["task"], chosen[index]["seed"], chosen[index]["balanced"], record["balanced"])
