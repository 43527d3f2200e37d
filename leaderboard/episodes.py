"""Running a policy's episodes on a protocol's tasks: in this process, on a pool of local processes, or on Ray.

Everything that scores episodes (submissions, references and their searches, model selection) runs them here, so
every method sees the same env, the same threads per episode and the same record of what happened.
"""

from __future__ import annotations

import copy
from contextlib import closing
from typing import Any, Iterator

import numpy as np

from dmix_gym.policy import Episode, Policy, rollout, rollout_vector
from dmix_gym.utils.pool import JobFailed, run_jobs
from dmix_gym.utils.threads import torch_threads
from dmix_gym.vector import auto_vector

from .protocol import Objective, Task
from .registry import resolve_policy


def episode_record(episode: Episode, objective: Objective, source: np.ndarray, probe_names: tuple[str, ...] = ()) -> dict[str, Any]:
    """What the store keeps of an episode: its score under the protocol's objective plus a trace for the report's plots,
    with every step's probe scores (outside the score: what a mixture gives away elsewhere)."""
    probes = np.asarray(episode.infos.get("probes", np.zeros((1, 0))), np.float64)
    return {
        "final_feedback": episode.final_feedback.tolist(),
        "balanced": objective.score(episode.final_feedback),
        "episode_return": episode.episode_return,
        "source_tokens": int(episode.tokens[:, source].sum()) if len(episode.tokens) else 0,
        "seconds": episode.seconds,
        "trace": {"domains": list(episode.domains), "fields": list(episode.fields), "mixtures": episode.mixtures.tolist(),
                  "feedback": episode.feedback.tolist(),
                  "probes": {name: probes[:, i].tolist() for i, name in enumerate(probe_names) if i < probes.shape[1]}},
    }


def _source_domains(env) -> np.ndarray:
    return np.asarray(env.unwrapped.domain_space.field_of) == 0


def _probe_names(env) -> tuple[str, ...]:
    return tuple(getattr(env.unwrapped, "probe_names", ()))


def run_episode(policy: Policy, task: Task, seed: int, objective: Objective, data_dir=None, cache_dir=None,
                env=None) -> dict[str, Any]:
    env = env or task.make_env(data_dir, cache_dir)
    return episode_record(rollout(policy, env, seed=seed), objective, _source_domains(env), _probe_names(env))


_WORKER: dict[str, Any] = {"envs": {}, "venvs": {}, "policies": {}}


def _loaded(policy: Policy | str) -> Policy:
    """A policy, or the one its spec names, loaded once per process."""
    if not isinstance(policy, str):
        return policy
    if policy not in _WORKER["policies"]:
        _WORKER["policies"][policy] = resolve_policy(policy)[0]
    return _WORKER["policies"][policy]


def _fresh(policy: Policy | str) -> Policy:
    """A policy object of its own, for one sub-env of a vector env (policies keep per-episode state)."""
    return copy.deepcopy(_loaded(policy))


def _episodes_job(policies: list[Policy | str], task: Task, seeds: list[int], objective: Objective, data_dir, cache_dir,
                  vector: int) -> list[dict[str, Any]]:
    """A chunk of one task's episodes, in this process or a pool worker: one at a time on the task's env
    (`vector` 0), or all at once on its K-proxy vector env. Envs are built once per task and process."""
    with torch_threads(task.threads):  # the policy's forward passes too: the episode's numbers repeat anywhere
        return _episodes(policies, task, seeds, objective, data_dir, cache_dir, vector)


def _episodes(policies: list[Policy | str], task: Task, seeds: list[int], objective: Objective, data_dir, cache_dir,
              vector: int) -> list[dict[str, Any]]:
    if not vector:
        envs = _WORKER["envs"]
        if task not in envs:
            envs[task] = task.make_env(data_dir, cache_dir)
        return [run_episode(_loaded(policy), task, seed, objective, env=envs[task]) for policy, seed in zip(policies, seeds)]
    venvs = _WORKER["venvs"]
    if (task, vector) not in venvs:
        venvs[task, vector] = task.make_vector_env(vector, data_dir, cache_dir)
    venv = venvs[task, vector]
    episodes = rollout_vector([_fresh(p) for p in policies], venv, list(seeds), wrap=task.wrap)
    source, probes = _source_domains(venv.unwrapped.envs[0]), _probe_names(venv.unwrapped.envs[0])
    return [episode_record(episode, objective, source, probes) for episode in episodes]


def run_episodes(jobs: list[tuple[Policy | str, Task, int]], objective: Objective, envs: dict[str, Any], workers: int, data_dir=None,
                 cache_dir=None, vector: int | None = None, progress: bool = False) -> Iterator[tuple[int, dict[str, Any]]]:
    """Run (policy, task, seed) episodes on the worker pool; yield (job index, record) as each ends.

    `vector` K > 0: a task's episodes run K at a time, their proxies trained together (`rollout_vector`);
    None: `auto_vector()`, batched on a GPU only. `envs` (task name -> env) are the ones this process built
    already; the others' data and base proxies are built here first (`progress`: their bars), then pool workers
    load them.
    """
    vector = auto_vector() if vector is None else vector
    _WORKER["envs"].update({task: envs[task.name] for _, task, _ in jobs if task.name in envs})
    in_process = workers <= 1 and not vector  # then the env built here is the one the episodes run on
    build_once([task for _, task, _ in jobs if task not in _WORKER["envs"]], data_dir, cache_dir, progress, in_process)
    chunks: list[list[int]] = []
    for index, (_, task, _) in enumerate(jobs):  # consecutive episodes of one task, up to K of them
        if chunks and vector and len(chunks[-1]) < vector and jobs[chunks[-1][0]][1] == task:
            chunks[-1].append(index)
        else:
            chunks.append([index])
    work = [([jobs[i][0] for i in chunk], jobs[chunk[0]][1], [jobs[i][2] for i in chunk], objective, data_dir, cache_dir,
             vector) for chunk in chunks]
    try:
        with closing(run_jobs(_episodes_job, work, workers)) as results:  # closed: queued episodes never start
            for c, records in results:
                yield from zip(chunks[c], records)
    except JobFailed as failure:
        _, task, seed = jobs[chunks[failure.index][0]]
        raise EpisodeFailure(task, seed, failure.error) from failure.error


def build_once(tasks: list[Task], data_dir=None, cache_dir=None, progress: bool = False, keep: bool = False) -> None:
    """Build (and cache) each task's data and base proxy here, once: pool workers that each met a missing base proxy
    would pre-train the same one at the same time, one copy per worker. `keep`: the env stays this process's own, for
    episodes run here; otherwise it is closed (a third of a second a task to build again once cached)."""
    for task in dict.fromkeys(tasks):
        env = task.make_env(data_dir, cache_dir, progress=progress)
        if keep:
            _WORKER["envs"][task] = env
        else:
            env.close()


class EpisodeFailure(RuntimeError):
    def __init__(self, task: Task, seed: int, error: BaseException):
        super().__init__(f"task {task.name}, seed {seed}: {type(error).__name__}: {error}")
