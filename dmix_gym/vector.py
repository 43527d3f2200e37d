"""DataMix-v0 as a native vector env: K proxies trained as one batched model.

`gym.make_vec("DataMix-v0", num_envs=K, preset=...)` returns a `DataMixVectorEnv`. Each sub-env is
a `DataMixEnv` of its own (mixture, data stream, RNG, feedback, episode end) whose proxy is slot k of
one `StackedLlama`: a vector step draws every sub-env's tokens, trains all K proxies in one batched
call, evaluates them in one batched pass, then finishes each sub-env's step. Sub-env i reset with
seed s + i gives the episode a single `DataMixEnv` gives with seed s + i, up to float rounding.

With `timing=True`, a sub-env's `train_seconds` and `eval_seconds` are its share of the batched call
(the call's time over the proxies in it), so summing them over sub-envs gives the compute spent.

Autoreset follows Gymnasium 1.0's vector envs: the step after a sub-env's episode ends resets it,
ignores its action, and returns its first observation with reward 0.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector.utils import batch_space

from .backend import StackedProxyBackend
from .env import DataMixEnv, normalise_action


class DataMixVectorEnv(gym.vector.VectorEnv):
    """K DataMix-v0 envs of one scenario whose proxies train and evaluate together (see the module docstring).

    Arguments are DataMixEnv's (`threads` pins the batched work's threads too), plus `num_envs` and `slot_group`,
    the proxies trained per forward and backward pass (None: all K on a GPU; on a CPU, as many as keep a pass's
    logits in cache: `stacked.default_slot_group`). `envs[k]` is sub-env k, a `DataMixEnv` (its `backend` is slot k, so it
    can also be stepped alone, or rendered).
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(self, num_envs: int = 1, scenario: Any = "general-math", preset: str | None = "cpu",
                 data_dir: str | Path | None = None, cache_dir: str | Path | None = None, device: str = "auto",
                 render_mode: str | None = None, compile: bool = False, progress: bool = True, timing: bool = False,
                 start: str = "corpus", start_samples: int = 256, max_episode_steps: int | None = None,
                 slot_group: int | None = None, threads: int | None = 1):
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        stacked: list[StackedProxyBackend] = []

        def slot_zero(*args):
            stacked.append(StackedProxyBackend(*args, num_models=num_envs, slot_group=slot_group))
            return stacked[0].slots[0]

        first = DataMixEnv(scenario, preset, data_dir, cache_dir, device, render_mode, compile, progress, timing,
                           start, start_samples, backend=slot_zero, threads=threads)
        self.stacked = stacked[0]
        self.envs = [first] + [first._sibling(self.stacked.slots[k]) for k in range(1, num_envs)]
        self.num_envs, self.render_mode, self.timing = num_envs, render_mode, timing
        self.single_action_space, self.single_observation_space = first.action_space, first.observation_space
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self._autoreset = np.zeros(num_envs, dtype=bool)
        self.max_episode_steps = max_episode_steps  # `gym.make_vec(..., max_episode_steps=n)` cuts earlier, like TimeLimit

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict | None = None):
        with self.envs[0].pinned_threads():
            return self._reset(seed)

    def _reset(self, seed: int | list[int | None] | None):
        seeds = [seed + i for i in range(self.num_envs)] if isinstance(seed, int) else (seed or [None] * self.num_envs)
        if len(seeds) != self.num_envs:
            raise ValueError(f"reset got {len(seeds)} seeds for {self.num_envs} envs")
        super().reset(seed=seed if isinstance(seed, int) else None)
        for env, s in zip(self.envs, seeds):
            env._new_episode(s)
        self._autoreset[:] = False
        evaluations, seconds = self._evaluate([not env._reuses_start_eval() for env in self.envs])
        observations, infos = [], {}
        for k, env in enumerate(self.envs):
            obs, info = env._started(env._start_evaluation(lambda: evaluations[k]), seconds)
            observations.append(obs)
            infos = self._add_info(infos, info, k)
        return np.stack(observations), infos

    def step(self, actions):
        with self.envs[0].pinned_threads():
            return self._step(actions)

    def _step(self, actions):
        actions = np.asarray(actions)
        if actions.shape != self.action_space.shape:
            raise ValueError(f"actions have shape {actions.shape}, expected {self.action_space.shape}")
        for k in np.flatnonzero(~self._autoreset):  # every action is checked before any sub-env changes
            try:
                normalise_action(actions[k], self.envs[k].num_domains)
            except ValueError as error:
                raise ValueError(f"sub-env {k}: {error}") from None
        resetting = self._autoreset.copy()
        drawn: dict[int, tuple] = {}
        for k, env in enumerate(self.envs):
            if resetting[k]:
                env._new_episode(None)
            else:
                drawn[k] = env._draw(actions[k])

        train_loss, train_seconds = [float("nan")] * self.num_envs, 0.0
        if drawn:
            shape = next(iter(drawn.values()))[2].shape
            tokens = torch.zeros((self.num_envs, *shape), dtype=torch.long)
            for k, (_, _, t) in drawn.items():
                tokens[k] = t
            stats = self.stacked.train_slots(tokens, torch.as_tensor(~resetting))
            train_loss, train_seconds = stats["loss"], stats["seconds"] / len(drawn)
        needed = [k in drawn or not self.envs[k]._reuses_start_eval() for k in range(self.num_envs)]
        evaluations, eval_seconds = self._evaluate(needed)

        observations, infos = [], {}
        rewards = np.zeros(self.num_envs)
        terminations = np.zeros(self.num_envs, dtype=bool)
        truncations = np.zeros(self.num_envs, dtype=bool)
        for k, env in enumerate(self.envs):
            if resetting[k]:
                obs, info = env._started(env._start_evaluation(lambda: evaluations[k]), eval_seconds)
            else:
                p, counts, _ = drawn[k]
                obs, rewards[k], terminations[k], truncations[k], info = env._advance(
                    p, counts, evaluations[k], train_loss[k], train_seconds, eval_seconds)
                if self.max_episode_steps is not None and env._t >= self.max_episode_steps:
                    truncations[k] = not terminations[k]
            observations.append(obs)
            infos = self._add_info(infos, info, k)
        self._autoreset = terminations | truncations
        return np.stack(observations), rewards, terminations, truncations, infos

    def _evaluate(self, needed: list[bool]) -> tuple[list | None, float]:
        """Every proxy's evaluation in one batched pass, if any sub-env needs one; and its seconds."""
        if not any(needed):
            return None, 0.0
        started = time.perf_counter()
        evaluations = self.stacked.evaluate_slots(self.envs[0].evalset)
        return evaluations, (time.perf_counter() - started) / self.num_envs

    def render(self) -> tuple | None:
        if self.render_mode is None:
            return None
        return tuple(env.render() for env in self.envs)

    def close_extras(self, **kwargs: Any) -> None:
        for env in self.envs:
            env.close()


def auto_vector(device: str | torch.device = "auto") -> int:
    """Proxies per vector env where nothing says otherwise: batched on a GPU, one per process on a CPU, where
    batching gains nothing over a process per core (`benchmarks/vector_env.py`)."""
    cuda = str(device) == "cuda" or (str(device) == "auto" and torch.cuda.is_available())
    return 16 if cuda else 0
