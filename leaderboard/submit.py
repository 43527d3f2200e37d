"""Run a policy through a protocol and store its results; compute the protocol's reference scores."""

from __future__ import annotations

from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from dmix_gym.errors import ConfigError
from dmix_gym.utils.paths import resolve_cache_dir

from .episodes import EpisodeFailure, run_episodes
from .official import load_official, open_store, ranking_objective
from .oracle import oracles
from .protocol import DEFAULT_PROTOCOL, PROTOCOLS, Protocol, Task, get_protocol
from .registry import resolve_policy
from .scores import mean_std
from .search_log import EpisodeLog
from .store import Store
from .table import REFERENCE_ROWS


def default_db(cache_dir=None) -> Path:
    return resolve_cache_dir(cache_dir) / "leaderboard.sqlite"


class BuildMismatch(RuntimeError):
    """This machine built a task's data or base proxy differently from the machine the stored results came from."""


def stored_starts(store: Store, version: str) -> dict[tuple[str, int], list[np.ndarray]]:
    """The start feedback (before any action) of each stored episode, per (task, seed): what a new one must start from."""
    starts: dict[tuple[str, int], list[np.ndarray]] = {}
    for e in store.episodes(version):
        if e["trace"].get("feedback"):
            starts.setdefault((e["task"], e["seed"]), []).append(np.asarray(e["trace"]["feedback"][0]))
    return starts


def same_start(start: np.ndarray, stored: list[np.ndarray], atol: float = 1e-3) -> bool:
    """Whether a start feedback matches every stored one of its (task, seed): the same data build and base proxy."""
    return all(np.allclose(start, expected, atol=atol) for expected in stored)


def check_start(task: str, seed: int, record: dict[str, Any], starts: dict[tuple[str, int], list[np.ndarray]]) -> None:
    """Refuse an episode whose start differs from a stored one's: its score would not be comparable with theirs."""
    start, stored = np.asarray(record["trace"]["feedback"][0]), starts.get((task, seed), [])
    if not same_start(start, stored):
        raise BuildMismatch(
            f"task {task} seed {seed} starts from feedback {np.round(start, 4).tolist()} here but from "
            f"{np.round(stored[0], 4).tolist()} in the stored results: this machine built the task's data or base proxy "
            "differently, so its scores are not comparable with the references")


def check_build(protocol: Protocol, store: Store, data_dir=None, cache_dir=None,
                progress: bool = True) -> list[tuple[str, np.ndarray, np.ndarray | None, bool | None]]:
    """(task, start feedback here, the stored results' or None, whether they match or None) per task: does this
    machine build each task's data and base proxy like the stored results?"""
    starts = stored_starts(store, protocol.version)
    rows = []
    for task in protocol.tasks:
        seed = task.seeds[0]
        _, info = task.make_env(data_dir, cache_dir, progress=progress).reset(seed=seed)
        here, stored = np.asarray(info["feedback"], np.float64), starts.get((task.name, seed), [])
        rows.append((task.name, here, stored[0] if stored else None, same_start(here, stored) if stored else None))
    return rows


def compute_references(protocol: Protocol, store: Store, data_dir=None, cache_dir=None, progress: bool = True,
                       workers: int = 1, vector: int | None = None) -> None:
    """ref_min (random mixtures) and ref_max (best static target share of the grid) of every task lacking them.

    Each reference episode is stored as it ends, so an interrupted computation resumes where it stopped.
    `vector` K > 0: K episodes of a task at a time on a vector env (None: `auto_vector()`, batched on a GPU).
    """
    from tqdm.auto import tqdm

    from baselines.static import RandomMixture, TargetSchedule

    if protocol.search is not None:
        search_references(protocol, store, data_dir, cache_dir, progress, workers)
        return
    stats = None
    for task in protocol.tasks:
        if store.reference(protocol.version, task.name) is not None:
            continue
        seeds = [task.seeds[i % len(task.seeds)] for i in range(protocol.reference_seeds)]
        # (label, policy, seed); each random episode has its own stream, so order and resumption do not matter
        jobs = [(f"random/{i}", RandomMixture(seed=i), task.seeds[i % len(task.seeds)]) for i in range(protocol.random_episodes)]
        jobs += [(f"static:target-share={s:g}", TargetSchedule((s,)), seed) for s in protocol.reference_grid for seed in seeds]
        done = store.reference_episodes(protocol.version, task.name)
        pending = [job for job in jobs if (job[0], job[2]) not in done]
        if pending:
            refuse_frozen(protocol)
            stats = stats or ranking_objective(protocol)
            # builds data and base checkpoint once, before any worker
            envs = {task.name: task.make_env(data_dir, cache_dir, progress=progress)}
            bar = tqdm(total=len(jobs), initial=len(jobs) - len(pending), desc=f"references {task.name}", unit="episode",
                       disable=not progress)
            for index, record in run_episodes([(p, task, seed) for _, p, seed in pending], stats, envs, workers, data_dir,
                                              cache_dir, vector):
                label, _, seed = pending[index]
                store.add_reference_episode(protocol.version, task.name, label, seed, record["balanced"])
                bar.update(1)
            bar.close()
            done = store.reference_episodes(protocol.version, task.name)
        scores: dict[str, list[float]] = {}
        for label, _, seed in jobs:
            scores.setdefault(label.split("/")[0], []).append(done[(label, seed)])
        random = scores.pop("random")
        grid = {name: mean_std(v)[0] for name, v in scores.items()}
        best = max(grid, key=grid.get)
        store.set_reference(protocol.version, task.name, mean_std(random)[0], grid[best],
                            {"grid": grid, "best_static": best, "random": random})


def reference_log(store: Store, protocol: Protocol, task: Task) -> Path:
    """Where a task's reference episodes are logged: beside the results database, one JSONL file per task (commit
    them with a database kept in a repository: a re-run on another machine runs only the missing episodes)."""
    return store.path.parent / "references" / protocol.version / f"{task.name}.jsonl"


def search_references(protocol: Protocol, store: Store, data_dir=None, cache_dir=None, progress: bool = True,
                      workers: int = 1) -> None:
    """v2 on: ref_min from random mixtures, ref_max the best of the confirmed static oracle, (v3 on) the confirmed
    static domain mixture and (on the protocol's `schedule_tasks`) the confirmed schedule oracles (v3 on: on the line
    and over the domain optimum's splits), all on reference seeds; resumable episode by episode."""
    for task in protocol.tasks:
        if store.reference(protocol.version, task.name) is not None:
            continue
        refuse_frozen(protocol)
        log = EpisodeLog(reference_log(store, protocol, task))
        found = oracles(task, protocol.objective, log, protocol.search, task.name in protocol.schedule_tasks, workers,
                        data_dir, cache_dir, progress)
        best = max(REFERENCE_ROWS, key=lambda kind: found[kind]["mean"] if kind in found else -np.inf)
        detail = {key: found[key] for key in ("random", "static", "schedule", "headroom", "static_search", "schedule_search",
                                              "domain", "domain_search", "domain_gain", "domain_schedule",
                                              "domain_schedule_search", "domain_headroom") if key in found}
        detail.update({"ref_max_from": best, "best_static": found["static"]["label"], "episodes": found["episodes"],
                       "episode_seconds": found["episode_seconds"]})
        store.set_reference(protocol.version, task.name, found["random"]["mean"], found[best]["mean"], detail)


class FrozenProtocol(ConfigError):
    """A protocol that takes no new episodes."""


def refuse_frozen(protocol: Protocol) -> None:
    if protocol.frozen:
        raise FrozenProtocol(f"protocol {protocol.version} is frozen: {protocol.frozen}")


def shared_tasks(protocol: Protocol, other: Protocol) -> set[str]:
    """The tasks `protocol` shares unchanged with `other` (scenario, preset, seeds, overrides, space, objective and
    threads; the description aside), when both rank by the same shipped objective: the same episodes, by the env's
    determinism."""
    if protocol.objective is None or other.objective != protocol.objective:
        return set()
    theirs = [replace(task, description="") for task in other.tasks]
    return {task.name for task in protocol.tasks if replace(task, description="") in theirs}


def shared_episodes(protocol: Protocol, fingerprint: str, store: Store) -> tuple[str, list[dict[str, Any]], dict]:
    """(other protocol, episodes, compute) of the same policy (same fingerprint) finished under another protocol, in
    `store` or its shipped official results, on the tasks the two share unchanged; ("", [], {}) when there are none.
    A submission takes these instead of re-running them (v3's unchanged baselines take v2's episodes)."""
    for other in PROTOCOLS.values():
        tasks = shared_tasks(protocol, other) if other.version != protocol.version else set()
        if not tasks:
            continue
        stored = [{**sub, "episodes": store.episodes(other.version, sub["name"])} for sub in store.submissions(other.version)
                  if sub["status"] == "done" and sub["fingerprint"] == fingerprint]
        official = [sub for sub in (load_official(other.version) or {"submissions": []})["submissions"]
                    if sub["fingerprint"] == fingerprint]
        for sub in stored + official:
            episodes = [e for e in sub["episodes"] if e["task"] in tasks]
            compute = {task: spent for task, spent in (sub["compute"] or {}).items() if task in tasks}
            return other.version, episodes, compute
    return "", [], {}


EPISODE_FIELDS = ("final_feedback", "balanced", "episode_return", "source_tokens", "seconds", "trace")


def submit(spec: str, name: str, protocol: Protocol | str = DEFAULT_PROTOCOL, db: str | Path | None = None, data_dir=None,
           cache_dir=None, workers: int = 1, progress: bool = True, vector: int | None = None) -> str:
    """Run `spec` through the protocol (resuming a crashed run) and store its results; return 'done' or 'failed'.

    `vector` K > 0: each task's episodes run K at a time, their proxies trained together on a vector env
    (None: `auto_vector()`, batched on a GPU only); each episode is still stored as it ends.
    """
    from tqdm.auto import tqdm

    protocol = get_protocol(protocol) if isinstance(protocol, str) else protocol
    refuse_frozen(protocol)
    store = open_store(db or default_db(cache_dir), protocol.version)
    try:
        policy, fingerprint = resolve_policy(spec)
    except Exception as error:  # an import error, a missing or corrupt file: recorded, nothing else touched
        store.record_failure(name, protocol.version, spec, f"policy did not load: {type(error).__name__}: {error}")
        return "failed"
    if store.finished(name, protocol.version, fingerprint):  # a re-run of a finished row builds nothing
        return "done"
    stats = ranking_objective(protocol)
    done = store.begin(name, protocol.version, spec, fingerprint)
    source, shared, shared_compute = shared_episodes(protocol, fingerprint, store)
    for episode in shared:
        if (episode["task"], episode["seed"]) not in done:
            store.add_episode(name, protocol.version, episode["task"], episode["seed"],
                              **{key: episode[key] for key in EPISODE_FIELDS})
            done.add((episode["task"], episode["seed"]))
    compute: dict[str, Any] = {task: {**spent, "episodes_from": source} for task, spent in shared_compute.items()}
    pending: list[tuple[Task, int]] = []
    envs: dict[str, Any] = {}
    try:
        for task in protocol.tasks:
            if task.name in compute and all((task.name, seed) in done for seed in task.seeds):
                continue  # every episode taken from the other protocol: nothing to build or fit
            env = envs[task.name] = task.make_env(data_dir, cache_dir, progress=progress)
            policy.prepare(env, progress=progress)  # one-off fits run here once, so workers find them cached
            compute[task.name] = policy.compute()
            pending += [(task, seed) for seed in task.seeds if (task.name, seed) not in done]
        bar = tqdm(total=len(pending), desc=f"{name} on {protocol.version}", unit="episode", disable=not progress)
        jobs = [(policy if workers <= 1 else spec, task, seed) for task, seed in pending]
        starts = stored_starts(store, protocol.version)
        with closing(run_episodes(jobs, stats, envs, workers, data_dir, cache_dir, vector)) as results:
            for index, record in results:  # a BuildMismatch stops the queued episodes too
                task, seed = pending[index]
                check_start(task.name, seed, record, starts)
                store.add_episode(name, protocol.version, task.name, seed, **record)
                bar.update(1)
        bar.close()
    except EpisodeFailure as failure:
        store.fail(name, protocol.version, str(failure))
        return "failed"
    except Exception as error:
        store.fail(name, protocol.version, f"{type(error).__name__}: {error}")
        return "failed"
    store.finish(name, protocol.version, compute)
    return "done"
