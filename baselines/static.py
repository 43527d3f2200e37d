"""Static references: one mixture held for the whole episode."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from agents.policy import History, Policy, ScenarioInfo
from datasets_builder.atomic import write_json
from datasets_builder.domains import DomainSpace


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
            raise ValueError(f"unknown static baseline {kind!r}; choose one of {sorted(STATIC)}")
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
