"""Regression on the logged episodes: RegMix's model fitted on an offline dataset instead of on proxy runs.

The question a reviewer asks of an offline-RL agent first: does RL add anything over regressing the outcome on the
mixtures in the same data? This baseline answers it with the agents' own data and no per-task compute:

1. Fit once, on every episode of the datasets (the ones the agents train on): for each field, LightGBM (RegMix's
   choice) from the episode's mean mixture to its final feedback f_k.
2. In a task, score a large random sample of mixtures by the objective the task rewards, sum_k lambda_k f_k (its
   reward weights, so the protocol's score up to a constant), and hold the mean of the top-k, static.
3. A task whose domain space has another size than the data's (the per-field space) gets the best target share on
   the line (1 - s) p_0 + s p*, from a regression on the episodes' mean target share.

It reads nothing of the task's own dynamics, as a static mixture cannot; a schedule or state-conditioned version is
not built.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dmix_gym.policy import History, Policy, ScenarioInfo
from dmix_gym.utils.atomic import write_json

from .regmix import make_regressor, sample_mixtures

DATASETS = ("dmix/general-math-cpu/trajectories-v1", "dmix/general-math-cpu/scarce-target-v1")


@dataclass(frozen=True)
class LoggedRegressionConfig:
    datasets: tuple[str, ...] = DATASETS  # Minari dataset ids (shipped ones are published on first use)
    search_samples: int = 100_000
    top_k: int = 100
    min_strength: float = 0.1  # the search samples' Dirichlet strengths, as RegMix's
    max_strength: float = 5.0
    seed: int = 0


@dataclass(frozen=True)
class LoggedEpisodes:
    """What the fit needs of the logged episodes: each one's mean mixture, mean target share and final feedback."""

    mixtures: np.ndarray  # (E, D)
    target_shares: np.ndarray  # (E,)
    final_feedback: np.ndarray  # (E, K)


def logged_episodes(datasets: tuple[str, ...]) -> LoggedEpisodes:
    """Every episode of the datasets (one domain space), reduced to what the regression reads."""
    from datasets_builder.publish import dmix_metadata, load_dmix_dataset

    mixtures, shares, finals = [], [], []
    for ident in datasets:
        dataset = load_dmix_dataset(ident)
        source = np.asarray(dmix_metadata(dataset)["field_of"]) == 0
        for episode in dataset.iterate_episodes():
            actions = np.asarray(episode.actions, np.float64)
            actions = actions / actions.sum(1, keepdims=True)
            mixtures.append(actions.mean(0))
            shares.append(1.0 - actions[:, source].sum(1).mean())
            finals.append(np.asarray(episode.infos["feedback"][-1], np.float64))
    return LoggedEpisodes(np.stack(mixtures), np.asarray(shares), np.stack(finals))


class LoggedRegression(Policy):
    """The mixture a regression on the logged episodes predicts best for the task's objective, held static."""

    name = "baseline:logged-regression"

    def __init__(self, config: LoggedRegressionConfig = LoggedRegressionConfig()):
        self.config = config
        self._fitted: dict[str, Any] | None = None

    def _fit(self) -> dict[str, Any]:
        """Per-field models on the mean mixture and on the mean target share; fitted once per process."""
        if self._fitted is None:
            data = logged_episodes(self.config.datasets)
            seed = self.config.seed
            fields = range(data.final_feedback.shape[1])
            self._fitted = {
                "prior": data.mixtures.mean(0) / data.mixtures.mean(0).sum(),
                "fine": [make_regressor("lightgbm", seed).fit(data.mixtures, data.final_feedback[:, k]) for k in fields],
                "share": [make_regressor("lightgbm", seed).fit(data.target_shares[:, None], data.final_feedback[:, k])
                          for k in fields],
            }
        return self._fitted

    def reset(self, info: ScenarioInfo) -> None:
        super().reset(info)
        fitted = self._fit()
        k = info.num_fields
        weights = np.asarray(info.scenario.get("reward_weights") or [1.0 / k] * k, np.float64)
        rng = np.random.default_rng(self.config.seed)
        space = info.domain_space
        if info.num_domains == len(fitted["prior"]):
            candidates = sample_mixtures(fitted["prior"], self.config.search_samples, rng, self.config.min_strength,
                                         self.config.max_strength)
            score = sum(w * m.predict(candidates) for w, m in zip(weights, fitted["fine"]))
            p = candidates[np.argsort(score)[-self.config.top_k:]].mean(0)
        else:
            shares = np.linspace(0.0, 1.0, 401)
            score = sum(w * m.predict(shares[:, None]) for w, m in zip(weights, fitted["share"]))
            s = float(shares[int(np.argmax(score))])
            p = (1 - s) * np.asarray(space.p0, np.float64) + s * np.asarray(space.p_star, np.float64)
        self.mixture = p / p.sum()

    def act(self, history: History) -> np.ndarray:
        return self.mixture

    def save(self, path: str | Path) -> Path:
        write_json(path, {"policy": self.name})
        return Path(path)
