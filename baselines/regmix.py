"""RegMix (Liu et al. 2024) as a baseline: regress the final feedback on the mixture, hold the best mixture static.

1. Sample M mixtures the way RegMix does: Dirichlet(strength * D * prior), the prior being the token
   distribution over domains sharpened/flattened by a temperature, and the strength drawn
   log-uniformly per sample (small strengths give sparse mixtures, large ones mixtures near the prior).
2. Train a proxy run on each (a DataMix-v0 episode holding it, through the same crash-safe staged runner as
   trajectory collection): the scenario's whole horizon, so that the runs see the forgetting the reward measures,
   on a proxy `proxy_width` times as wide as the scenario's, as RegMix trains small proxies and transfers their
   ranking (dmix-bench-v2 ran 5-step runs on the scenario's own proxy: `proxy_steps=5, proxy_width=None`).
3. Fit LightGBM (as RegMix does) from mixture to the objective sum_k lambda_k f_k of the final feedback (the
   env's reward weights, so the sum of the rewards a policy would collect; the protocol's score up to a constant),
   with a linear model as a cross-check; report each one's cross-validated R^2.
4. Score a large random sample of mixtures with the model and hold the mean of the top-k.

The fit is cached per scenario and configuration, with the proxy compute it spent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from dmix_gym.errors import ConfigError
from dmix_gym.feedback import objective
from dmix_gym.policy import ScenarioInfo

from .fitted import FittedMixture
from .proxy_runs import narrower_proxy, run_proxies


@dataclass(frozen=True)
class RegMixConfig:
    runs: int = 32  # M proxy runs
    proxy_steps: int | None = None  # re-weighting steps per proxy run (None: the scenario's max_steps)
    proxy_width: float | None = 0.5  # the runs' proxy: this fraction of the scenario's width (None: the scenario's)
    temperature: float = 0.5  # prior = token share ** temperature, renormalised
    min_strength: float = 0.1
    max_strength: float = 5.0
    search_samples: int = 100_000
    top_k: int = 100
    folds: int = 4  # cross-validation folds for the reported R^2
    workers: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.runs < 2 or (self.proxy_steps is not None and self.proxy_steps < 1):
            raise ConfigError(f"RegMixConfig needs runs >= 2 and proxy_steps >= 1, got {self.runs}, {self.proxy_steps}")
        if self.proxy_width is not None and not 0 < self.proxy_width <= 1:
            raise ConfigError(f"RegMixConfig.proxy_width is a fraction of the scenario's width in (0, 1], got {self.proxy_width}")


def token_prior(train_sequences: np.ndarray, temperature: float) -> np.ndarray:
    """RegMix's prior: each domain's share of the training tokens, raised to `temperature` and renormalised."""
    share = np.asarray(train_sequences, np.float64) / np.sum(train_sequences)
    prior = share ** temperature
    return prior / prior.sum()


def sample_mixtures(prior: np.ndarray, n: int, rng: np.random.Generator, min_strength: float = 0.1,
                    max_strength: float = 5.0) -> np.ndarray:
    """(n, D) mixtures ~ Dirichlet(strength * prior * D), strength log-uniform in [min, max] per sample."""
    strength = np.exp(rng.uniform(np.log(min_strength), np.log(max_strength), size=n))
    alpha = np.maximum(strength[:, None] * prior[None, :] * len(prior), 1e-3)
    x = rng.gamma(alpha)
    x[x.sum(1) == 0, :] = 1.0  # all-underflow rows (tiny alphas) fall back to uniform
    return x / x.sum(1, keepdims=True)


def make_regressor(kind: str, seed: int = 0):
    """A fresh regression model: 'lightgbm' (RegMix's choice) or 'linear'."""
    if kind == "lightgbm":
        import lightgbm as lgb

        return lgb.LGBMRegressor(n_estimators=300, learning_rate=0.05, num_leaves=8, min_child_samples=2,
                                 subsample=0.9, subsample_freq=1, colsample_bytree=0.9, random_state=seed, verbose=-1)
    if kind == "linear":
        from sklearn.linear_model import Ridge

        return Ridge(alpha=1e-3)
    raise ConfigError(f"unknown regressor {kind!r}; choose 'lightgbm' or 'linear'")


def cross_validated_r2(kind: str, x: np.ndarray, y: np.ndarray, folds: int, seed: int = 0) -> float:
    """Held-out R^2 of `kind` over k folds (every point predicted by a model that did not see it)."""
    from sklearn.metrics import r2_score
    from sklearn.model_selection import KFold

    predicted = np.empty_like(y)
    for train, test in KFold(min(folds, len(y)), shuffle=True, random_state=seed).split(x):
        predicted[test] = make_regressor(kind, seed).fit(x[train], y[train]).predict(x[test])
    return float(r2_score(y, predicted))


def search_optimum(model, prior: np.ndarray, samples: int, top_k: int, rng: np.random.Generator,
                   min_strength: float = 0.1, max_strength: float = 5.0) -> np.ndarray:
    """The mean of the `top_k` of `samples` random mixtures the model scores highest."""
    candidates = sample_mixtures(prior, samples, rng, min_strength, max_strength)
    best = np.argsort(model.predict(candidates))[-top_k:]
    p = candidates[best].mean(0)
    return p / p.sum()


class RegMix(FittedMixture):
    """The RegMix mixture for the scenario, held static."""

    name, kind = "baseline:regmix", "regmix"

    def __init__(self, config: RegMixConfig = RegMixConfig()):
        super().__init__(config)

    def fit(self, env, progress: bool) -> dict[str, Any]:
        return fit_regmix(env, self.config, progress)


def fit_regmix(env, config: RegMixConfig, progress: bool = True) -> dict[str, Any]:
    """Proxy runs (staged, resumable) -> regressions -> the searched mixture, with R^2 and compute spent."""
    base = env.unwrapped
    info = ScenarioInfo.from_env(env)
    rng = np.random.default_rng(config.seed)
    prior = token_prior([base.shards.train_sequences(d) for d in range(base.num_domains)], config.temperature)
    mixtures = sample_mixtures(prior, config.runs, rng, config.min_strength, config.max_strength)
    steps = config.proxy_steps or base.max_steps
    proxy = narrower_proxy(base.scenario, config.proxy_width) if config.proxy_width is not None else {}
    runs = run_proxies(env, mixtures, steps, config.seed, "regmix", config.workers, progress, proxy)
    x, y = runs.mixtures, objective(runs.final_feedback, base.scenario.weights())
    model = make_regressor("lightgbm", config.seed).fit(x, y)
    mixture = search_optimum(model, prior, config.search_samples, config.top_k, rng, config.min_strength, config.max_strength)
    return {
        "scenario": info.scenario_name, "config": asdict(config), "mixture": mixture.tolist(),
        "predicted_score": float(model.predict(mixture[None])[0]), "best_observed_score": float(y.max()),
        "r2": {kind: cross_validated_r2(kind, x, y, config.folds, config.seed) for kind in ("lightgbm", "linear")},
        "proxy_model": proxy or "the scenario's", "compute": runs.compute(steps), "staging": str(runs.folder),
    }
