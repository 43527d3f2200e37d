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


def share_at(knots: tuple[float, ...], progress: float) -> float:
    """The target share of a piecewise-linear schedule through `knots` at evenly spaced points of progress in [0, 1]."""
    if len(knots) == 1:
        return float(knots[0])
    return float(np.interp(progress, np.linspace(0.0, 1.0, len(knots)), knots))


def step_progress(step: int, steps: int) -> float:
    """Where (1-based) step `step` of a `steps`-step episode sits in [0, 1]: its first step at 0, its last at 1."""
    return min(1.0, (step - 1) / max(1, steps - 1))


def schedule_shares(knots: tuple[float, ...], steps: int) -> tuple[float, ...]:
    """The target share of every step of a `steps`-step episode under the schedule through `knots`."""
    return tuple(share_at(knots, step_progress(step, steps)) for step in range(1, steps + 1))


def parse_knots(text: str) -> tuple[float, ...]:
    """A schedule's knots from comma-separated target shares in [0, 1] (`"0.3,0.1"`), as the CLIs and policy specs
    write them."""
    try:
        knots = tuple(float(value) for value in text.split(","))
    except ValueError:
        raise ConfigError(f"{text!r}: knots are comma-separated target shares in [0, 1], like 0.3,0.1") from None
    check_knots(knots)
    return knots


def check_knots(knots: tuple[float, ...]) -> None:
    if not knots or not all(0.0 <= k <= 1.0 for k in knots):
        raise ConfigError(f"schedule knots must be target shares in [0, 1], got {list(knots)}")


class TargetSchedule(Policy):
    """(1 - s_t) * p_0 + s_t * p*, s_t a piecewise-linear target share through `knots` over the episode: step t of T
    (1-based) sits at progress (t - 1) / (T - 1). One knot is a static mixture giving the target fields share s (the
    v0/v1 references' grid). The family the references' search (`leaderboard.oracle`) explores."""

    def __init__(self, knots: tuple[float, ...]):
        knots = tuple(float(k) for k in knots)
        check_knots(knots)
        self.knots = knots
        kind = "static" if len(knots) == 1 else "schedule"
        self.name = f"{kind}:target-share=" + ",".join(f"{k:g}" for k in knots)

    def reset(self, info: ScenarioInfo) -> None:
        super().reset(info)
        space = info.domain_space
        self.p0, self.p_star = start_mixture(space), naive_mixture(space)

    def share(self, step: int) -> float:
        """The target share of (1-based) step `step`."""
        return share_at(self.knots, step_progress(step, self.info.max_steps))

    def act(self, history: History) -> np.ndarray:
        s = self.share(len(history))
        return (1 - s) * self.p0 + s * self.p_star

    def save(self, path: str | Path) -> Path:
        write_json(path, {"policy": "schedule", "knots": list(self.knots)})
        return Path(path)
