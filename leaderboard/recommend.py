"""`dmix search`: which mixture to continually pre-train with, for any scenario, found as the references are.

A practitioner brings a scenario (a built-in one, or a JSON over their own corpora) and optionally a model directory;
the search (`leaderboard.oracle`: the line's target share, then within-field domain splits, then schedules) runs on
the scenario's own objective, each episode logged and resumable, within a budget of episodes. The confirmed best static
mixture and best schedule are written as policy files that `dmix cpt --policy` and `dmix leaderboard submit --policy`
take.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dmix_gym.utils.atomic import write_json

from .oracle import oracles
from .protocol import Objective, SearchConfig, Task
from .search_log import SEARCH, BudgetSpent, EpisodeLog, reference_seeds

STATIC_PREFIXES = ("static:", "domains:")


def scenario_objective(task: Task) -> Objective:
    """The scenario's own reward as an objective: S(f) = sum_k lambda_k f_k, eq. 6 with its lambda_k (equal unless
    its JSON sets `reward_weights`), so an episode's return is S(final) - S(start)."""
    weights = np.asarray(task.make_scenario().weights(), np.float64)
    total = float(weights.sum())
    return Objective(mean=(0.0,) * len(weights), std=(1.0 / total,) * len(weights),
                     weights=tuple(float(w) for w in weights / total))


def search_task(scenario: str, preset: str | None, model: str | Path | None = None, options: dict[str, Any] | None = None,
                objective: Objective | None = None) -> Task:
    """The scenario (a name or a JSON path) as a task to search: `options` override scenario settings, `model` trains
    a Hugging Face model directory instead of the proxy, `objective` (None: the scenario's own reward) is maximised.
    A bad option or scenario fails here, before any episode."""
    overrides = dict(options or {})
    if model is not None:
        overrides["hf_model"] = str(Path(model).resolve())
    name = Path(scenario).stem if scenario.endswith(".json") else scenario
    task = Task(name, scenario, preset or "cpu", (), tuple(sorted(overrides.items())), description="dmix search",
                objective=objective)
    task.make_scenario()
    return task


def best_logged(log: EpisodeLog, seeds: list[int]) -> dict[str, Any] | None:
    """The static mixture with the best mean score over the search seeds in a log (unconfirmed), or None."""
    scores: dict[str, list[float]] = {}
    for (label, seed), record in log.records.items():
        if label.startswith(STATIC_PREFIXES) and seed in seeds:
            scores.setdefault(label, []).append(record["score"])
    complete = {label: float(np.mean(v)) for label, v in scores.items() if len(v) == len(seeds)}
    if not complete:
        return None
    best = max(complete, key=complete.get)
    return {"label": best, "mean": complete[best], "seeds": seeds}


def recommended(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The confirmed best static mixture (the line's or a domain mixture) and, where searched, the best schedule (on the
    line or over the domain optimum's splits)."""
    static = max((result[k] for k in ("static", "domain") if k in result), key=lambda r: r["mean"])
    schedules = [result[k] for k in ("schedule", "domain_schedule") if k in result]
    return {"static": static, **({"schedule": max(schedules, key=lambda r: r["mean"])} if schedules else {})}


def static_transfer(reference: dict[str, Any] | None) -> str | None:
    """Static-transfer's policy: the training task's recommended static mixture (the line's or a domain mixture, by
    role and domain name), held unchanged on every task; None while that task has no confirmed static reference."""
    if not reference or not any(kind in reference for kind in ("static", "domain")):
        return None
    return recommended(reference)["static"]["label"]


def search_mixture(task: Task, folder: str | Path, config: SearchConfig, schedules: bool = True, workers: int = 1,
                   budget: int | None = None, data_dir=None, cache_dir=None, progress: bool = True,
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Search (or resume) a task's best mixtures into `folder` (episodes.jsonl, result.json, static.json and
    schedule.json, the latter two saved policies); return the result. A spent budget returns the best static mixture
    logged so far, unconfirmed, under `best_so_far`."""
    folder = Path(folder)
    objective = task.objective or scenario_objective(task)
    log = EpisodeLog(folder / "episodes.jsonl", budget)
    try:
        result = oracles(task, objective, log, config, schedules, workers, data_dir, cache_dir, progress)
    except BudgetSpent as spent:
        result = {"task": task.name, "spent": str(spent), "episodes": len(log.records),
                  "best_so_far": best_logged(log, reference_seeds(SEARCH, config.search_seeds))}
    else:
        result["recommended"] = recommended(result)
        for kind, found in result["recommended"].items():
            write_json(folder / f"{kind}.json", {"policy": found["label"]})
    result.update(extra or {})
    write_json(folder / "result.json", result)
    return result
