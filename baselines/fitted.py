"""A static mixture worked out once per scenario (proxy runs, reference runs, law fits), cached, then held."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from dmix_gym.data.domains import collapse
from dmix_gym.policy import History, Policy, ScenarioInfo
from dmix_gym.utils.atomic import write_json

from .cache import cached, scenario_key

COMPUTE_TOTALS = ("proxy_runs", "tokens", "proxy_seconds")  # what the leaderboard sums over a policy's fits


class FittedMixture(Policy):
    """Holds the mixture `fit(env)` returns for the scenario; `kind` names its cache files, `config` its settings.

    The fit is made in the env's own (fine) space; acting through the per-field space, the mixture is
    collapsed to it.
    """

    kind: str = "fitted"

    def __init__(self, config: Any):
        self.config = config
        self.fits: dict[str, dict[str, Any]] = {}

    @abstractmethod
    def fit(self, env, progress: bool) -> dict[str, Any]:
        """{'mixture': (D,) list, 'compute': {...}, ...anything worth keeping} for the env's scenario."""

    def _key(self, info: ScenarioInfo) -> str:
        return scenario_key(info, **{self.kind: asdict(self.config)})

    def prepare(self, env, progress: bool = True) -> None:
        """Make the fit, or read it from the cache."""
        self.fit_space = env.unwrapped.domain_space
        key = self._key(ScenarioInfo.from_env(env.unwrapped))
        if key not in self.fits:
            self.fits[key] = cached(env, self.kind, key, lambda: self.fit(env, progress))

    def reset(self, info: ScenarioInfo) -> None:
        super().reset(info)
        fit = self.fits.get(self._key(info))
        if fit is None:
            raise RuntimeError(f"{self.name} needs its fit: call prepare(env) first (rollout() does)")
        self.mixture = np.asarray(fit["mixture"], np.float64)
        if info.domain_space.size != len(self.mixture):  # acting through the source-based space
            self.mixture = collapse(self.mixture, self.fit_space)
        self.fit_result = fit

    def act(self, history: History) -> np.ndarray:
        return self.mixture

    def compute(self) -> dict[str, Any]:
        """The compute of every fit this policy has made or read."""
        fits = [f.get("compute", {}) for f in self.fits.values()]
        return {key: round(sum(f.get(key, 0) for f in fits), 2) for key in COMPUTE_TOTALS}

    def save(self, path: str | Path) -> Path:
        write_json(path, {"policy": self.name, "config": asdict(self.config)})
        return Path(path)
