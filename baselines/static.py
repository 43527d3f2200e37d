"""Static references: one mixture held for the whole episode."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from dmix_gym.data.domains import DomainSpace
from dmix_gym.errors import ConfigError
from dmix_gym.policy import History, Policy, ScenarioInfo
from dmix_gym.utils.atomic import write_json


def naive_mixture(space: DomainSpace) -> np.ndarray:
    """All weight on the target fields, their domains in proportion to p* (which is zero on source domains)."""
    return np.asarray(space.p_star, dtype=np.float64)


def uniform_mixture(space: DomainSpace) -> np.ndarray:
    return np.full(space.size, 1.0 / space.size)


def start_mixture(space: DomainSpace) -> np.ndarray:
    """p_0: the source field's own distribution."""
    return np.asarray(space.p0, dtype=np.float64)


STATIC = {"naive": naive_mixture, "uniform": uniform_mixture, "start-state": start_mixture}


class StaticPolicy(Policy):
    """Holds `mixture_of(domain space)` at every step."""

    def __init__(self, kind: str):
        if kind not in STATIC:
            raise ConfigError(f"unknown static baseline {kind!r}; choose one of {sorted(STATIC)}")
        self.kind, self.name = kind, f"baseline:{kind}"
        self._mixture_of: Callable[[DomainSpace], np.ndarray] = STATIC[kind]

    def reset(self, info: ScenarioInfo) -> None:
        super().reset(info)
        self.mixture = self._mixture_of(info.domain_space)

    def act(self, history: History) -> np.ndarray:
        return self.mixture

    def save(self, path: str | Path) -> Path:
        write_json(path, {"policy": self.name})
        return Path(path)


class RandomMixture(Policy):
    """A fresh Dirichlet(1) mixture every step: the leaderboard's reference for an uninformed policy (ref_min)."""

    name = "baseline:random"

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.episodes = 0

    def reset(self, info: ScenarioInfo) -> None:
        super().reset(info)
        self.rng = np.random.default_rng([self.seed, self.episodes])  # a new stream per episode, reproducible
        self.episodes += 1

    def act(self, history: History) -> np.ndarray:
        return self.rng.dirichlet(np.ones(self.info.num_domains))

    def save(self, path: str | Path) -> Path:
        write_json(path, {"policy": self.name})
        return Path(path)


class TargetShare(Policy):
    """(1 - s) * p_0 + s * p*: a static mixture giving the target fields share s (the leaderboard's reference grid)."""

    def __init__(self, share: float):
        if not 0.0 <= share <= 1.0:
            raise ConfigError(f"target share must be in [0, 1], got {share}")
        self.share, self.name = share, f"static:target-share={share:g}"

    def reset(self, info: ScenarioInfo) -> None:
        super().reset(info)
        space = info.domain_space
        self.mixture = (1 - self.share) * start_mixture(space) + self.share * naive_mixture(space)

    def act(self, history: History) -> np.ndarray:
        return self.mixture
