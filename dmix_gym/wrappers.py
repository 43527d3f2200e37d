"""Wrappers: the agent's history window, and moving between the fine and the source-based domain space."""

from __future__ import annotations

from typing import Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.wrappers import FrameStackObservation

from .data.domains import DomainSpace, collapse, expand, source_space


class HistoryWindow(FrameStackObservation):
    """Observations become the last W observations, shape (W, obs_dim), oldest first.

    Before W steps have passed, the window is padded with copies of the reset observation.
    """

    def __init__(self, env: gym.Env, window: int):
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        super().__init__(env, stack_size=window, padding_type="reset")
        self.window = window


def _split_observation(obs: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    return obs[..., :d], obs[..., d:]


class CollapseDomains(gym.Wrapper):
    """Let a policy of one domain space act in an env of the other.

    `to="source"`: the env has the fine space (D domains); the wrapper exposes the source-based
    space (one domain per field). Actions are split over each field's domains like p_0 (source
    field) or p* (target fields), or like `splits` (a (D,) mixture of the fine space: a per-field
    policy then keeps a domain mixture's within-field proportions); the observed mixture is summed
    per field.

    `to="fine"`: the env has the source-based space; the wrapper exposes the fine space given by
    `fine_space`. Actions are summed per field; the observed mixture is split as above.
    """

    def __init__(self, env: gym.Env, to: Literal["source", "fine"] = "source", fine_space: DomainSpace | None = None,
                 splits: np.ndarray | None = None):
        super().__init__(env)
        if to not in ("source", "fine"):
            raise ValueError(f"to must be 'source' or 'fine', got {to!r}")
        if splits is not None and to != "source":
            raise ValueError("splits= say how to='source' spreads a field's share over its domains")
        self.to = to
        inner: DomainSpace = env.get_wrapper_attr("domain_space")  # what `env` exposes, itself maybe a CollapseDomains
        if to == "source":
            self.fine_space = inner
        else:
            if fine_space is None:
                raise ValueError("to='fine' needs fine_space= (the DomainSpace of a fine preset)")
            if len(inner.names) != len(inner.fields) or tuple(fine_space.fields) != tuple(inner.fields):
                raise ValueError(f"env space {inner.names} is not the source-based space of fields {fine_space.fields}")
            self.fine_space = fine_space
        self.splits = None if splits is None else np.asarray(splits, np.float64)
        if self.splits is not None and self.splits.shape != (inner.size,):
            raise ValueError(f"splits must be a mixture over the env's {inner.size} domains, got shape {self.splits.shape}")
        self.inner_d = len(inner.names)
        self.outer_d = len(self.fine_space.fields) if to == "source" else self.fine_space.size
        # The space a policy acting through this wrapper sees (read by env.get_wrapper_attr("domain_space")).
        self.domain_space = source_space(self.fine_space) if to == "source" else self.fine_space
        self.action_space = spaces.Box(0.0, 1.0, (self.outer_d,), np.float32)
        box = env.observation_space
        extra_low, extra_high = box.low[self.inner_d:], box.high[self.inner_d:]
        self.observation_space = spaces.Box(
            np.concatenate([np.zeros(self.outer_d, np.float32), extra_low]),
            np.concatenate([np.ones(self.outer_d, np.float32), extra_high]),
            dtype=np.float32,
        )

    def action(self, action: np.ndarray) -> np.ndarray:
        from .env import normalise_action

        p = normalise_action(action, self.outer_d)
        return expand(p, self.fine_space, self.splits) if self.to == "source" else collapse(p, self.fine_space)

    def observation(self, obs: np.ndarray) -> np.ndarray:
        mixture, rest = _split_observation(obs, self.inner_d)
        mapped = collapse(mixture, self.fine_space) if self.to == "source" else expand(mixture, self.fine_space)
        return np.concatenate([mapped, rest]).astype(np.float32)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return self.observation(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(self.action(action))
        return self.observation(obs), reward, terminated, truncated, info
