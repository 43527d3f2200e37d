"""Crash-safe collection: run DataMix-v0 along planned trajectories and stage each finished episode.

A collection lives in one staging folder (under the cache directory):

    plan.json              scenario, name, and every planned episode (quality N, seed, mixtures)
    episode-000012.npz     one finished episode, written atomically by the worker that ran it

Re-running a collection skips the staged episodes, so a killed run loses only the episodes in
flight. Workers are local processes by default; `backend="ray"` sends the same work to a Ray
cluster (`ray.init()` picks it up from $RAY_ADDRESS, or starts a local one).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from dmix_gym.data.build import build_data
from dmix_gym.errors import DmixError
from dmix_gym.policy import Episode, Replay, rollout, rollout_vector
from dmix_gym.scenario import canonical_scenario
from dmix_gym.utils.atomic import atomic_path, write_json
from dmix_gym.utils.paths import resolve_staging_dir
from dmix_gym.utils.pool import Backend, run_jobs
from dmix_gym.vector import auto_vector

from .behaviours import BehaviourSpec, plan_behaviours
from .trajectories import QUALITY_LEVELS, NoisySchedule, PlannedEpisode, SamplerConfig, plan_episodes, schedule_episodes

EPISODE_PATTERN = "episode-*.npz"


class CollectionError(DmixError, RuntimeError):
    """A staging folder that does not match the collection asked for, or an unreadable staged episode."""


DATASET_VERSION = 1  # v1: source fields fed back by held-out text (v0: by Q/A pairs)
SHIPPED = Path(__file__).resolve().parent / "collections"  # the benchmark's own collections, plan and episodes, in the package


def staging_dir(scenario_name: str, name: str, cache_dir: str | os.PathLike | None = None,
                version: int = DATASET_VERSION) -> Path:
    """Where the collection `name` of a scenario (e.g. general-math-cpu) is staged: the shipped copy when the
    package has one (the benchmark's datasets, committed episode by episode), else under $DMIX_STAGING_DIR or the
    cache directory."""
    folder = f"{scenario_name}-{name}-v{version}"
    return SHIPPED / folder if (SHIPPED / folder).is_dir() else resolve_staging_dir(cache_dir) / folder


def episode_path(folder: Path, index: int) -> Path:
    return folder / f"episode-{index:06d}.npz"


@dataclass(frozen=True)
class Plan:
    """A collection's fixed inputs: the scenario (dict form), its name, and the planned episodes."""

    scenario: dict[str, Any]
    name: str
    episodes: tuple[PlannedEpisode, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "name": self.name,
            "episodes": [{"index": e.index, "quality": e.quality, "seed": e.seed, "actions": e.actions.tolist()} for e in self.episodes],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Plan":
        episodes = tuple(
            PlannedEpisode(e["index"], e["quality"], e["seed"], np.asarray(e["actions"], np.float32)) for e in data["episodes"]
        )
        return cls(data["scenario"], data["name"], episodes)


def make_plan(scenario, name: str, total: int, qualities: tuple[int, ...] = QUALITY_LEVELS,
              config: SamplerConfig = SamplerConfig(), seed: int = 0, data_dir: str | None = None,
              cache_dir: str | None = None, schedule: NoisySchedule | None = None,
              behaviours: BehaviourSpec | None = None) -> Plan:
    """Plan `total` episodes of a scenario, split over the quality levels (Algorithm 1), then the noisy schedule's,
    then `behaviours`' (dataset v2's levels: `datasets_builder.behaviours`)."""
    space = build_data(scenario.data, data_dir, cache_dir, progress=False).domain_space
    p0, p_star = np.asarray(space.p0), np.asarray(space.p_star)
    episodes = plan_episodes(p0, p_star, scenario.train.max_steps, total, qualities, config, seed)
    if schedule is not None:
        if len(schedule.shares) != scenario.train.max_steps:
            raise CollectionError(f"the schedule has {len(schedule.shares)} shares, the scenario's episode "
                                  f"{scenario.train.max_steps} steps")
        episodes += schedule_episodes(p0, p_star, schedule, seed, first_index=len(episodes))
    if behaviours is not None:
        episodes += plan_behaviours(p0, p_star, np.asarray(space.field_of), scenario.train.max_steps, behaviours, seed,
                                    first_index=len(episodes))
    return Plan(json.loads(scenario.to_json()), name, tuple(episodes))


def load_or_write_plan(folder: Path, scenario: dict[str, Any], total: int, make: Callable[[], Plan]) -> Plan:
    """The plan staged in `folder`, or a new one from `make()` written there. Another scenario's plan is an error."""
    path = folder / "plan.json"
    if not path.exists():
        plan = make()
        folder.mkdir(parents=True, exist_ok=True)
        write_json(path, plan.to_json())
        return plan
    staged = Plan.from_json(json.loads(path.read_text()))
    if canonical_scenario(staged.scenario) != canonical_scenario(scenario):
        raise CollectionError(f"{path} was planned for another scenario; use another --name or remove {folder}")
    if len(staged.episodes) < total:
        raise CollectionError(f"{path} plans {len(staged.episodes)} episodes, fewer than the {total} asked for; "
                              f"use another --name or remove {folder}")
    return staged


def finished(folder: Path) -> set[int]:
    """Indices of the episodes staged in `folder`."""
    return {int(p.stem.split("-")[1]) for p in folder.glob(EPISODE_PATTERN)}


# --- running episodes ------------------------------------------------------------------------------

def run_episode(env, planned: PlannedEpisode) -> dict[str, np.ndarray]:
    """Run the env along the planned mixtures (stopping early if it ends); every array the dataset needs."""
    return episode_arrays(rollout(_replay(planned), env, seed=planned.seed), planned)


def run_episodes_vector(venv, chunk: list[PlannedEpisode]) -> list[dict[str, np.ndarray]]:
    """`run_episode` for up to K planned episodes at once on a K-proxy `DataMixVectorEnv`."""
    episodes = rollout_vector([_replay(e) for e in chunk], venv, [e.seed for e in chunk])
    return [episode_arrays(episode, planned) for episode, planned in zip(episodes, chunk)]


def _replay(planned: PlannedEpisode) -> Replay:
    return Replay(planned.actions, name=f"plan/{planned.index}")


def episode_arrays(episode: Episode, planned: PlannedEpisode) -> dict[str, np.ndarray]:
    """Every array the dataset keeps of a planned episode's run."""
    steps = len(episode.rewards)
    arrays = {
        "observations": episode.observations.astype(np.float32),
        "actions": episode.mixtures[1:].astype(np.float32),
        "rewards": episode.rewards,
        "terminations": np.arange(1, steps + 1) == steps if episode.terminated else np.zeros(steps, bool),
        "truncations": np.arange(1, steps + 1) == steps if episode.truncated else np.zeros(steps, bool),
        "index": np.int64(planned.index),
        "quality": np.int64(planned.quality),
        "seed": np.int64(planned.seed),
    }
    arrays.update({f"info/{key}": value for key, value in episode.infos.items()})
    return arrays


def stage_episode(folder: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write one finished episode atomically."""
    final = episode_path(folder, int(arrays["index"]))
    with atomic_path(final, suffix=".npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)
    return final


def load_episode(path: Path) -> dict[str, np.ndarray]:
    """A staged episode's arrays; a corrupt file is an error naming it."""
    try:
        with np.load(path) as data:
            return {key: data[key] for key in data.files}
    except Exception as error:  # zipfile/pickle/OS errors all mean the same thing here
        raise CollectionError(f"staged episode {path} is unreadable ({error}); delete it and re-run the collection") from error


_WORKER_ENV = None


def _worker_init(env_kwargs: dict[str, Any], vector: int = 0) -> None:
    global _WORKER_ENV
    _WORKER_ENV = (gym.make_vec("DataMix-v0", num_envs=vector, **env_kwargs) if vector
                   else gym.make("DataMix-v0", **env_kwargs))


def _worker_run(folder: str, chunk: list[PlannedEpisode]) -> tuple[int, int]:
    """Run and stage a chunk of planned episodes (one at a time, or all at once on a vector env); (episodes, tokens)."""
    if isinstance(_WORKER_ENV, gym.vector.VectorEnv):
        runs = run_episodes_vector(_WORKER_ENV, chunk)
    else:
        runs = [run_episode(_WORKER_ENV, planned) for planned in chunk]
    for arrays in runs:
        stage_episode(Path(folder), arrays)
    return len(runs), sum(int(arrays["info/tokens"].sum()) for arrays in runs)


def collect(scenario, name: str = "trajectories", total: int = 64, qualities: tuple[int, ...] = QUALITY_LEVELS,
            workers: int = 2, backend: Backend = "process", data_dir: str | None = None, cache_dir: str | None = None,
            sampler: SamplerConfig = SamplerConfig(), seed: int = 0, progress: bool = True,
            vector: int | None = None, schedule: NoisySchedule | None = None,
            behaviours: BehaviourSpec | None = None) -> Path:
    """Collect (or finish collecting) `total` Algorithm 1 episodes of a scenario, and `schedule`'s and `behaviours`'
    episodes after them, into its staging folder; return the folder.

    `vector` K > 0: each worker trains K episodes' proxies at once on a `DataMixVectorEnv` (None: on a GPU only).
    """
    folder = staging_dir(scenario.name, name, cache_dir)
    planned = total + (schedule.episodes if schedule else 0) + (behaviours.episodes() if behaviours else 0)
    plan = load_or_write_plan(folder, json.loads(scenario.to_json()), planned,
                              lambda: make_plan(scenario, name, total, qualities, sampler, seed, data_dir, cache_dir, schedule,
                                                behaviours))
    run_plan(folder, plan, planned, workers, backend, data_dir, cache_dir, progress, vector)
    return folder


def run_plan(folder: Path, plan: Plan, total: int | None = None, workers: int = 2, backend: Backend = "process",
             data_dir: str | None = None, cache_dir: str | None = None, progress: bool = True,
             vector: int | None = None) -> None:
    """Run the first `total` planned episodes not yet staged in `folder` (which holds `plan`), staging each one as
    it finishes (`vector` K > 0: K at a time, trained together; None: `auto_vector()`, batched on a GPU)."""
    total = len(plan.episodes) if total is None else total
    vector = auto_vector() if vector is None else vector
    for stale in folder.glob(".episode-*.tmp.npz"):  # left by a run killed mid-write
        stale.unlink()
    done = finished(folder)
    pending = [e for e in plan.episodes[:total] if e.index not in done]
    if not pending:
        return
    env_kwargs = {"scenario": plan.scenario, "data_dir": data_dir, "cache_dir": cache_dir, "progress": False,
                  "timing": True}  # staged episodes keep their wall-clock times (throughput, RegMix's cost)

    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=total - len(pending), unit="episode", desc=f"collect {folder.name}", disable=not progress)
    tokens, started = 0, time.perf_counter()
    try:
        size = max(1, vector)
        chunks = [(str(folder), pending[i : i + size]) for i in range(0, len(pending), size)]
        for _, (episodes, episode_tokens) in run_jobs(_worker_run, chunks, workers, backend,
                                                      initializer=_worker_init, initargs=(env_kwargs, vector)):
            tokens += episode_tokens
            bar.update(episodes)
            bar.set_postfix(tokens=f"{tokens / 1e6:.2f}M", tok_s=f"{tokens / (time.perf_counter() - started):.0f}")
    finally:
        bar.close()
