"""Honest model selection: each algorithm's checkpoint is chosen by its score on validation seeds.

The candidates of an algorithm are what `dmix agents train` left in the agents folder: SFT's
best-validation-MSE agent (`sft.pt`), the offline RL actor after every `every` gradient steps
(`<algo>-steps/<steps>.pt`) and the Decision Transformer (`dt.json`). Each runs the validation tasks on
seeds from `VALIDATION_SEED_BASE`, disjoint from the seeds trajectory collection and evaluation use, so no
choice ever sees an evaluation episode: v0/v1 the in-distribution task alone; v2 on every task type of the
protocol plus its validation scenarios (no evaluation task's), so a checkpoint that collapses off its
training scenario is not chosen. A candidate's score is the protocol's objective averaged over its episodes
(every task is scored in the same standardised units); ties go to the earlier checkpoint.

Every finished episode is written to the selection JSON at once, keyed by the candidate's weights and settings
(`agents.digest`), so an interrupted selection resumes, a checkpoint retrained to the same weights (another machine)
keeps its episodes, and one retrained to other weights is scored again. With a shortlist, every candidate
plays a first rung (each protocol task's first validation seed) and only each algorithm's best few play the rest:
successive halving with one cut, for candidate sets whose full validation would cost more than their training.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from agents.digest import saved_agent_digest
from dmix_gym.errors import ConfigError, MissingFileError
from dmix_gym.utils.atomic import write_json

from .episodes import run_episodes
from .official import ranking_objective
from .protocol import VALIDATION_SEED_BASE, Protocol, Task, get_protocol
from .scores import mean_std

RL_ALGOS = ("cql", "iql", "td3bc", "bc")


def draw_tasks(space: str, indices: range, objective) -> tuple[Task, ...]:
    """Validation tasks from draws of a scenario space (`dmix_gym.scenario_space`): agents trained on a space's draws
    are chosen on draws they never trained on, as well as on the protocol's tasks."""
    from dmix_gym.scenario_space import draw_scenarios, load_draw, load_space

    scenario_space = load_space(space)
    draws = draw_scenarios(scenario_space, len(indices), start=indices.start) if len(indices) else []
    return tuple(Task(f"draw/{draw['name']}", load_draw(draw, scenario_space.preset).to_json(), scenario_space.preset, (),
                      objective=objective, description=f"model selection only: draw {draw['name']} of {space}")
                 for draw in draws)


def parse_draws(text: str) -> tuple[str, range]:
    """`SPACE:A-B` (draws A to B of a scenario space, both included) as (space, range)."""
    space, sep, span = text.rpartition(":")
    low, dash, high = span.partition("-")
    if not sep or not space or not low.isdigit() or (dash and not high.isdigit()):
        raise ConfigError(f"validation draws are SPACE:A-B (e.g. train-v1:1000-1004), got {text!r}")
    first, last = int(low), int(high) if dash else int(low)
    if last < first:
        raise ConfigError(f"validation draws {text!r}: the last draw comes before the first")
    return space, range(first, last + 1)


def validation_tasks(protocol: Protocol, seeds: int, draws: tuple[Task, ...] = ()) -> tuple[Task, ...]:
    """The tasks model selection runs, each on `seeds` validation seeds: the in-distribution task (v0, v1), or every
    task and validation scenario of the protocol (v2 on), and any validation `draws` (`draw_tasks`)."""
    if seeds < 1:
        raise ConfigError(f"model selection needs at least one validation seed, got {seeds}")
    if protocol.search is None:
        return (replace(protocol.tasks[0], name="validation", seeds=tuple(VALIDATION_SEED_BASE + i for i in range(seeds)),
                        description="model selection: the in-distribution task on validation seeds"),)
    tasks = protocol.tasks + protocol.validation_scenarios + tuple(draws)
    return tuple(replace(t, name=f"validation/{t.name}", seeds=tuple(VALIDATION_SEED_BASE + 1000 * i + j for j in range(seeds)))
                 for i, t in enumerate(tasks))


def find_candidates(agents: str | Path, every: int = 500) -> dict[str, dict[str, Path]]:
    """{algorithm: {candidate label: saved policy}} of an agents folder, in training order."""
    agents = Path(agents)
    found: dict[str, dict[str, Path]] = {}
    if (agents / "sft.pt").is_file():
        found["sft"] = {"sft": agents / "sft.pt"}
    for algo in RL_ALGOS:
        snapshots = sorted((int(p.stem), p) for p in (agents / f"{algo}-steps").glob("*.pt") if re.fullmatch(r"\d+", p.stem))
        chosen = {f"{algo}@{steps}": path for steps, path in snapshots if steps % every == 0 or steps == snapshots[-1][0]}
        if chosen:
            found[algo] = chosen
    if (agents / "dt.json").is_file():
        found["dt"] = {"dt": agents / "dt.json"}
    if not found:
        raise MissingFileError(f"no trained agents in {agents}: run `dmix agents train --out {agents}` first")
    return found


def find_all_candidates(folders: list[str | Path], every: int = 500) -> dict[str, dict[str, Path]]:
    """The candidates of several agents folders (one per training setting, e.g. feedback features), merged per
    algorithm. A later folder's labels carry its name (`agents-relative/cql@500`); the first folder's stay bare, so a
    selection of it alone resumes unchanged."""
    names = [Path(folder).name for folder in folders]
    if len(set(names)) < len(names):
        raise ConfigError(f"agents folders need distinct names, got {names}")
    merged: dict[str, dict[str, Path]] = {}
    for index, folder in enumerate(folders):
        prefix = "" if index == 0 else f"{Path(folder).name}/"
        for algo, group in find_candidates(folder, every).items():
            merged.setdefault(algo, {}).update({prefix + label: path for label, path in group.items()})
    return merged


def select_models(agents: str | Path | list[str | Path], protocol_version: str, seeds: int = 2, every: int = 500,
                  out: str | Path | None = None, workers: int = 1, data_dir=None, cache_dir=None,
                  progress: bool = True, draws: str | None = None, splits: str | None = None,
                  shortlist: int | None = None) -> dict[str, Any]:
    """Score every candidate in `agents` (a folder, or several) on validation seeds (and on the validation `draws`,
    `SPACE:A-B`); write and return the selection (scores and each algorithm's choice over all the folders).

    `shortlist` (successive halving, one cut): every candidate plays the first rung, the first validation seed of
    each protocol task; only each algorithm's best `shortlist` there play the rest (more seeds, the draws, whose
    larger proxies cost most), and the choice is made among those, on every episode.

    `splits` (a `domains:` spec): every candidate acts with those within-field splits wherever its domain space is
    not the task's (`<agent>@domains:...`, `baselines.domains.WithinFieldSplits`), as it will be submitted: per-field
    agents trained across a scenario space's draws are chosen as they will act."""
    from tqdm.auto import tqdm

    folders = list(agents) if isinstance(agents, (list, tuple)) else [agents]
    protocol = get_protocol(protocol_version)
    if shortlist is not None and shortlist < 1:
        raise ConfigError(f"a shortlist keeps at least one candidate per algorithm, got {shortlist}")
    validation_draws = draw_tasks(*parse_draws(draws), protocol.objective) if draws else ()
    tasks = validation_tasks(protocol, seeds, validation_draws)
    first_rung = {episode_key(task, task.seeds[0]) for task in tasks[:len(tasks) - len(validation_draws)]}
    out = Path(out) if out else Path(folders[0]) / "selection.json"
    candidates = find_all_candidates(folders, every)
    files = {label: path for group in candidates.values() for label, path in group.items()}
    suffix = "" if splits is None else "@" + splits
    digests = {label: saved_agent_digest(path)[:16] + suffix for label, path in files.items()}  # other splits: anew

    header = ({"protocol": protocol.version, "scenario": tasks[0].scenario, "preset": tasks[0].preset,
               "seeds": list(tasks[0].seeds)} if protocol.search is None else
              {"protocol": protocol.version, "tasks": {t.name: list(t.seeds) for t in tasks}})
    state = json.loads(out.read_text()) if out.is_file() else {}
    scores: dict[str, dict[str, Any]] = state.get("scores", {}) if _same_tasks(state, header) else {}
    scores = {label: s for label, s in scores.items() if label in digests and s.get("sha256") == digests[label]}
    for label in files:
        scores.setdefault(label, {"sha256": digests[label], "path": str(files[label]), "balanced": {}})

    def pending(labels, rung: bool) -> list[tuple[str, Task, int]]:
        """The unscored episodes of `labels` in the first rung (`rung`) or after it."""
        return [(label, task, seed) for label in labels for task in tasks for seed in task.seeds
                if (episode_key(task, seed) in first_rung) == rung and episode_key(task, seed) not in scores[label]["balanced"]]

    def save() -> dict[str, Any]:
        counted = {label: run_episodes_of(header, s) for label, s in scores.items()}
        chosen = {algo: {**choice, **({"splits": splits} if splits else {})}
                  for algo, choice in _choose(candidates, counted).items()}
        selection = {**header, "every": every, "scores": scores, "chosen": chosen, "margin": selection_margin(chosen, counted)}
        if shortlist is not None:
            selection["shortlist"] = shortlist
        write_json(out, selection)
        return selection

    def play(batch: list[tuple[str, Task, int]], what: str) -> None:
        if not batch:
            return
        bar = tqdm(total=len(batch), desc=f"model selection, {what}", unit="episode", disable=not progress)
        jobs = [(str(files[label]) + suffix, task, seed) for label, task, seed in batch]
        for index, record in run_episodes(jobs, ranking_objective(protocol), {}, workers, data_dir, cache_dir):
            label, task, seed = batch[index]
            scores[label]["balanced"][episode_key(task, seed)] = record["balanced"]
            save()
            bar.update(1)
        bar.close()

    play(pending(files, True), f"{len(first_rung)} first-rung episode(s) per candidate")
    finalists = list(files) if shortlist is None else shortlisted(candidates, scores, first_rung, shortlist)
    play(pending(finalists, False), f"{len(tasks)} task(s) x {seeds} validation seed(s), {len(finalists)} candidates")
    return save()


def shortlisted(candidates: dict[str, dict[str, Path]], scores: dict[str, dict[str, Any]], keys: set[str],
                keep: int) -> list[str]:
    """Each algorithm's `keep` best candidates by their mean score on the episodes `keys` (the earlier on a tie)."""
    chosen = []
    for group in candidates.values():
        means = {label: float(np.mean([scores[label]["balanced"][k] for k in keys])) for label in group}
        chosen += sorted(group, key=lambda label: -means[label])[:keep]
    return chosen


def _same_tasks(state: dict[str, Any], header: dict[str, Any]) -> bool:
    """Whether a stored selection ran the same validation tasks; the seed count may differ, since every score is
    kept per episode: a run on fewer seeds reuses a larger run's episodes, and a run on more seeds extends it."""
    fixed = [key for key in header if key not in ("seeds", "tasks")]
    return all(state.get(key) == header[key] for key in fixed) and set(state.get("tasks", {})) == set(header.get("tasks", {}))


def run_episodes_of(selection: dict[str, Any], score: dict[str, Any]) -> dict[str, float]:
    """A candidate's scores on the episodes `selection` (its header) names, leaving out the episodes of other seeds
    kept from another run, so every candidate is compared on the same episodes."""
    tasks = selection["tasks"] if "tasks" in selection else {"validation": selection["seeds"]}
    keys = [_key(name, seed) for name, seeds in tasks.items() for seed in seeds]
    return {key: score["balanced"][key] for key in keys if key in score["balanced"]}


def episode_key(task: Task, seed: int) -> str:
    """A validation episode's key in the selection JSON: its seed (one task, as v0/v1 wrote it) or `task:seed`."""
    return _key(task.name, seed)


def _key(task_name: str, seed: int) -> str:
    return str(seed) if task_name == "validation" else f"{task_name}:{seed}"


def selection_margin(chosen: dict[str, dict[str, Any]], scores: dict[str, dict[str, float]]) -> dict[str, Any] | None:
    """How far the best algorithm's choice is ahead of the runner-up's, paired over their common validation episodes
    (`scores`: each candidate's score per episode; mean, std and 95% t-interval of the differences): a margin inside
    its interval's noise is a coin toss."""
    from .scores import paired_difference

    ranked = ranked_algorithms(chosen)
    if len(ranked) < 2:
        return None
    best, second = (scores[chosen[a]["label"]] for a in ranked[:2])
    common = sorted(set(best) & set(second))
    if len(common) < 2:
        return None
    difference = paired_difference([best[k] for k in common], [second[k] for k in common])
    return {"best": chosen[ranked[0]]["label"], "runner_up": chosen[ranked[1]]["label"], **difference}


def ranked_algorithms(chosen: dict[str, dict[str, Any]], leave_out: tuple[str, ...] = ()) -> list[str]:
    """The algorithms of a selection's `chosen`, best validation mean first (the first one listed on a tie),
    without those in `leave_out`."""
    return sorted((algo for algo in chosen if algo not in leave_out), key=lambda algo: -chosen[algo]["balanced_mean"])


def _choose(candidates: dict[str, dict[str, Path]], scores: dict[str, dict[str, float]]) -> dict[str, dict[str, Any]]:
    """The best-scoring candidate of each algorithm (`scores`: each one's score per episode; the earliest on a tie),
    among those scored on the most episodes, so a half-scored candidate never wins on a lucky few."""
    chosen = {}
    for algo, group in candidates.items():
        most = max(len(scores[label]) for label in group)
        finished = {label: mean_std(list(scores[label].values())) for label in group if most and len(scores[label]) == most}
        if finished:
            best = max(finished, key=lambda label: finished[label][0])
            chosen[algo] = {"label": best, "path": str(group[best]), "balanced_mean": finished[best][0],
                            "balanced_std": finished[best][1]}
    return chosen
