"""Scores of a task's search episodes by (label, seed): the log every reference search appends to and resumes from.

An episode is logged (one JSON line, flushed) as it ends; `evaluate` runs only the candidates' episodes the log lacks,
so a search killed at any point re-runs nothing it finished.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from dmix_gym.errors import DmixError
from dmix_gym.policy import Policy

from .episodes import run_episodes
from .protocol import REFERENCE_SEED_BASE, Objective, Task

SEARCH, CONFIRM, RANDOM = 0, 1_000, 2_000  # seed offsets from REFERENCE_SEED_BASE: disjoint seed sets


def reference_seeds(kind: int, n: int) -> list[int]:
    """`n` reference seeds of a kind (SEARCH, CONFIRM or RANDOM)."""
    return [REFERENCE_SEED_BASE + kind + i for i in range(n)]


class BudgetSpent(DmixError):
    """A search's episode budget ran out before it finished; it resumes from its log with a larger budget."""


class EpisodeLog:
    """Scores of finished episodes by (label, seed), one JSON line each, appended and flushed as each ends.

    `budget`: the most episodes the log may hold; a search that needs more stops with `BudgetSpent` once it is full.
    """

    def __init__(self, path: str | Path, budget: int | None = None):
        self.path, self.budget = Path(path), budget
        self.records: dict[tuple[str, int], dict[str, Any]] = {}
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # a line torn by a crash mid-write: that episode runs again
                    continue
                self.records[record["label"], int(record["seed"])] = record

    def __contains__(self, key: tuple[str, int]) -> bool:
        return key in self.records

    def score(self, label: str, seed: int) -> float:
        return float(self.records[label, seed]["score"])

    def add(self, label: str, seed: int, record: dict[str, Any]) -> None:
        line = {"label": label, "seed": seed, **record}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as file:
            file.write(json.dumps(line) + "\n")
            file.flush()
            os.fsync(file.fileno())
        self.records[label, seed] = line


def summary(record: dict[str, Any]) -> dict[str, Any]:
    """What the log keeps of a leaderboard episode record: score, final feedback (and probes), the mean target share and
    mean mixture over its steps (what a model-based search regresses the score on), seconds."""
    trace = record["trace"]
    source = [f == trace["fields"][0] for f in _fields_of(trace)]
    mixtures = np.asarray(trace["mixtures"][1:], np.float64)
    target_share = float(1.0 - mixtures[:, source].sum(1).mean()) if len(mixtures) else float("nan")
    mean_mixture = [round(float(w), 6) for w in mixtures.mean(0)] if len(mixtures) else []
    return {"score": record["balanced"], "final_feedback": record["final_feedback"], "target_share": target_share,
            "mixture": mean_mixture, "steps": len(mixtures), "seconds": record["seconds"],
            **({"final_probes": {k: v[-1] for k, v in trace["probes"].items()}} if trace.get("probes") else {})}


def _fields_of(trace: dict[str, Any]) -> list[str]:
    """The field of each domain of a trace (domain names are `<field>/<domain>`; a one-domain field is its name)."""
    return [d.split("/")[0] for d in trace["domains"]]


def run_missing(jobs: list[tuple[str, Policy, int]], task: Task, objective: Objective, log: EpisodeLog, workers: int = 1,
                data_dir=None, cache_dir=None, progress: bool = True) -> None:
    """Run the (label, policy, seed) episodes that are not in the log yet, on the worker pool, logging each as it ends
    (as many as the log's budget allows: then `BudgetSpent`)."""
    pending = [job for job in jobs if (job[0], job[2]) not in log]
    room = len(pending) if log.budget is None else max(0, log.budget - len(log.records))
    spent, pending = len(pending) > room, pending[:room]
    if pending:
        _run_logged(pending, task, objective, log, workers, data_dir, cache_dir, progress)
    if spent:
        raise BudgetSpent(f"the search's budget of {log.budget} episodes is spent ({len(log.records)} in {log.path}); "
                          "run it again with a larger budget to go on from there")


def _run_logged(pending: list[tuple[str, Policy, int]], task: Task, objective: Objective, log: EpisodeLog, workers: int,
                data_dir, cache_dir, progress: bool) -> None:
    from tqdm.auto import tqdm

    bar = tqdm(total=len(pending), desc=f"{task.name} search", unit="episode", disable=not progress)
    for index, record in run_episodes([(p, task, seed) for _, p, seed in pending], objective, {}, workers, data_dir,
                                      cache_dir, vector=0, progress=progress):
        log.add(pending[index][0], pending[index][2], summary(record))
        bar.update(1)
    bar.close()


def evaluate(candidates: dict[str, Policy], seeds: list[int], task: Task, objective: Objective, log: EpisodeLog,
             workers: int = 1, data_dir=None, cache_dir=None, progress: bool = True) -> dict[str, np.ndarray]:
    """{label: scores on `seeds`} of every candidate, running only the episodes not in the log."""
    jobs = [(label, policy, seed) for label, policy in candidates.items() for seed in seeds]
    run_missing(jobs, task, objective, log, workers, data_dir, cache_dir, progress)
    return {label: np.array([log.score(label, seed) for seed in seeds]) for label in candidates}
