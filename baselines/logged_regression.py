"""Regression on the logged episodes: RegMix's model fitted on an offline dataset instead of on proxy runs.

The question a reviewer asks of an offline-RL agent first: does RL add anything over regressing the outcome on the
mixtures in the same data? This baseline answers it with the agents' own data and no per-task compute:

1. Fit once, on every episode of the datasets (the ones the agents train on): for each field, LightGBM (RegMix's
   choice) from the episode's mean mixture to its final feedback f_k.
2. In a task, score a large random sample of mixtures by the objective the task rewards, sum_k lambda_k f_k (its
   reward weights, so the protocol's score up to a constant), and hold the mean of the top-k, static.
3. A task whose domain space has another size than the data's (the per-field space) gets the best target share on
   the line (1 - s) p_0 + s p*, from a regression on the episodes' mean target share.

With `condition_steps` c > 0 it also reads what the task's first steps showed, as the agents can: it plays the static
mixture above for c steps, then the rest of the episode at the mixture a second regression predicts best given the
first steps' mixture and the feedback they moved (f_c - f_0 per field), fitted on the same episodes (those longer than
c steps). A two-phase schedule, chosen from the task's own response, with no proxy run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dmix_gym.errors import ConfigError
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
    condition_steps: int = 0  # c > 0: re-choose the mixture after c steps from the feedback they moved (0: static)

    def __post_init__(self) -> None:
        if self.condition_steps < 0:
            raise ConfigError(f"condition_steps must be 0 (static) or a number of steps, got {self.condition_steps}")


@dataclass(frozen=True)
class LoggedEpisodes:
    """What the fit needs of the logged episodes: each one's mean mixture, mean target share and final feedback, and
    (for conditioning on the first c steps) each one's mixture over those steps, over the rest, and f_c - f_0."""

    mixtures: np.ndarray  # (E, D)
    target_shares: np.ndarray  # (E,)
    final_feedback: np.ndarray  # (E, K)
    first_mixtures: np.ndarray | None = None  # (E, D), NaN rows for episodes of c steps or fewer
    later_mixtures: np.ndarray | None = None  # (E, D)
    responses: np.ndarray | None = None  # (E, K)


def logged_episodes(datasets: tuple[str, ...], condition_steps: int = 0) -> LoggedEpisodes:
    """Every episode of the datasets (one domain space), reduced to what the regression reads."""
    from datasets_builder.publish import dmix_metadata, load_dmix_dataset

    mixtures, shares, finals, firsts, laters, responses = [], [], [], [], [], []
    c = condition_steps
    for ident in datasets:
        dataset = load_dmix_dataset(ident)
        source = np.asarray(dmix_metadata(dataset)["field_of"]) == 0
        for episode in dataset.iterate_episodes():
            actions = np.asarray(episode.actions, np.float64)
            actions = actions / actions.sum(1, keepdims=True)
            feedback = np.asarray(episode.infos["feedback"], np.float64)  # reset's first
            mixtures.append(actions.mean(0))
            shares.append(1.0 - actions[:, source].sum(1).mean())
            finals.append(feedback[-1])
            if c:
                long_enough = c < len(actions)
                firsts.append(actions[:c].mean(0) if long_enough else np.full(actions.shape[1], np.nan))
                laters.append(actions[c:].mean(0) if long_enough else np.full(actions.shape[1], np.nan))
                responses.append(feedback[c] - feedback[0] if long_enough else np.full(feedback.shape[1], np.nan))
    if not c:
        return LoggedEpisodes(np.stack(mixtures), np.asarray(shares), np.stack(finals))
    return LoggedEpisodes(np.stack(mixtures), np.asarray(shares), np.stack(finals), np.stack(firsts), np.stack(laters),
                          np.stack(responses))


def conditioned_features(first: np.ndarray, response: np.ndarray, later: np.ndarray) -> np.ndarray:
    """(N, 2D + K) regression inputs: the first steps' mixture, the feedback they moved, the rest's mixture."""
    n = len(later)
    return np.concatenate([np.broadcast_to(first, (n, first.shape[-1])), np.broadcast_to(response, (n, response.shape[-1])),
                           later], axis=1)


class LoggedRegression(Policy):
    """The mixture a regression on the logged episodes predicts best for the task's objective, held static."""

    name = "baseline:logged-regression"

    def __init__(self, config: LoggedRegressionConfig = LoggedRegressionConfig()):
        self.config = config
        self._fitted: dict[str, Any] | None = None

    def _fit(self) -> dict[str, Any]:
        """Per-field models on the mean mixture and on the mean target share; fitted once per process."""
        if self._fitted is None:
            data = logged_episodes(self.config.datasets, self.config.condition_steps)
            seed = self.config.seed
            fields = range(data.final_feedback.shape[1])
            self._fitted = {
                "prior": data.mixtures.mean(0) / data.mixtures.mean(0).sum(),
                "fine": [make_regressor("lightgbm", seed).fit(data.mixtures, data.final_feedback[:, k]) for k in fields],
                "share": [make_regressor("lightgbm", seed).fit(data.target_shares[:, None], data.final_feedback[:, k])
                          for k in fields],
            }
            if self.config.condition_steps:
                keep = ~np.isnan(data.responses).any(1)
                x = np.concatenate([data.first_mixtures, data.responses, data.later_mixtures], axis=1)[keep]
                self._fitted["conditioned"] = [make_regressor("lightgbm", seed).fit(x, data.final_feedback[keep, k])
                                               for k in fields]
        return self._fitted

    def reset(self, info: ScenarioInfo) -> None:
        super().reset(info)
        fitted = self._fit()
        k = info.num_fields
        self.weights = np.asarray(info.scenario.get("reward_weights") or [1.0 / k] * k, np.float64)
        self.later = None
        rng = np.random.default_rng(self.config.seed)
        space = info.domain_space
        self.rechoose = bool(self.config.condition_steps) and info.num_domains == len(fitted["prior"])  # the data's space
        if info.num_domains == len(fitted["prior"]):
            candidates = self._candidates(rng)
            score = sum(w * m.predict(candidates) for w, m in zip(self.weights, fitted["fine"]))
            p = candidates[np.argsort(score)[-self.config.top_k:]].mean(0)
        else:
            shares = np.linspace(0.0, 1.0, 401)
            score = sum(w * m.predict(shares[:, None]) for w, m in zip(self.weights, fitted["share"]))
            s = float(shares[int(np.argmax(score))])
            p = (1 - s) * np.asarray(space.p0, np.float64) + s * np.asarray(space.p_star, np.float64)
        self.mixture = p / p.sum()

    def _candidates(self, rng: np.random.Generator) -> np.ndarray:
        return sample_mixtures(self._fit()["prior"], self.config.search_samples, rng, self.config.min_strength,
                               self.config.max_strength)

    def act(self, history: History) -> np.ndarray:
        c = self.config.condition_steps
        if self.rechoose and len(history) == c + 1:  # c steps played: choose the rest from what they moved
            response = np.asarray(history.infos[c]["feedback"], np.float64) - np.asarray(history.infos[0]["feedback"])
            candidates = self._candidates(np.random.default_rng([self.config.seed, 1]))
            x = conditioned_features(self.mixture, response, candidates)
            score = sum(w * m.predict(x) for w, m in zip(self.weights, self._fit()["conditioned"]))
            later = candidates[np.argsort(score)[-self.config.top_k:]].mean(0)
            self.later = later / later.sum()
        return self.mixture if self.later is None else self.later

    def save(self, path: str | Path) -> Path:
        write_json(path, {"policy": self.name, "config": asdict(self.config)})
        return Path(path)
