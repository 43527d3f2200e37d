"""Data Mixing Laws (Ye et al. 2024, "Data Mixing Laws: Optimizing Data Mixtures by Predicting Language
Modeling Performance"): fit how each field's loss depends on the mixture, then pick the mixture the
fitted laws say is best.

1. Proxy runs at a handful of field mixtures r (points on the K-field simplex: every pure field, then
   Dirichlet(1) draws; within a field, domains split like p0 or p*), through the same staged,
   resumable runner as RegMix. A few more runs are held out to report the laws' prediction error.
2. Per field i, the paper's exponential law (eq. 1), on the field's loss L_i = -f_i:
       L_i(r) = c_i + k_i * exp(sum_j t_ij r_j)
   fitted by least squares (several starts, the best kept).
3. The mixture maximising the objective sum_i lambda_i f_i (the env's reward weights) under the fitted laws (searched over the
   simplex), held for the whole episode.

Departure: the paper extrapolates laws across training steps and model sizes from small runs; here
every run is a whole proxy episode of the scenario (`proxy_steps`, default the scenario's own), so the
laws predict the quantity the reward measures directly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from dmix_gym.data.domains import expand
from dmix_gym.feedback import objective
from dmix_gym.policy import ScenarioInfo

from .fitted import FittedMixture
from .proxy_runs import run_proxies


@dataclass(frozen=True)
class MixingLawsConfig:
    runs: int = 8  # proxy runs the laws are fitted on (the K pure fields among them)
    heldout_runs: int = 2  # more runs, only to report the laws' prediction error
    proxy_steps: int | None = None  # steps per run (None: the scenario's max_steps)
    starts: int = 8  # least-squares starts per field
    search_samples: int = 50_000
    workers: int = 2
    seed: int = 0


def law(params: np.ndarray, r: np.ndarray) -> np.ndarray:
    """L(r) = c + exp(log k + r @ t), params = (c, log k, t_1..t_K); r is (n, K)."""
    return params[0] + np.exp(params[1] + np.asarray(r) @ params[2:])


def fit_law(r: np.ndarray, loss: np.ndarray, starts: int = 8, seed: int = 0) -> np.ndarray:
    """Least-squares parameters of `law` for one field's losses at the mixtures r (best of several starts)."""
    from scipy.optimize import least_squares

    r, loss = np.asarray(r, np.float64), np.asarray(loss, np.float64)
    rng = np.random.default_rng(seed)
    spread = max(float(np.ptp(loss)), 1e-3)
    best = None
    for _ in range(starts):
        x0 = np.concatenate([[loss.min() - spread * rng.uniform(0.05, 1.0), np.log(spread) + rng.normal(0, 0.5)],
                             rng.normal(0, 1.0, r.shape[1])])
        result = least_squares(lambda p: law(p, r) - loss, x0, method="trf", max_nfev=2000)
        if best is None or result.cost < best.cost:
            best = result
    return best.x


def field_mixtures(k: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, K) points on the simplex: the K pure fields first, then Dirichlet(1) draws."""
    corners = np.eye(k)[:n]
    return np.concatenate([corners, rng.dirichlet(np.ones(k), size=max(0, n - k))])


class MixingLaws(FittedMixture):
    """The mixture that fitted data mixing laws predict is best for the scenario, held static."""

    name, kind = "baseline:mixing-laws", "mixing-laws"

    def __init__(self, config: MixingLawsConfig = MixingLawsConfig()):
        super().__init__(config)

    def fit(self, env, progress: bool) -> dict[str, Any]:
        return fit_mixing_laws(env, self.config, progress)


def fit_mixing_laws(env, config: MixingLawsConfig, progress: bool = True) -> dict[str, Any]:
    """Proxy runs -> one law per field -> the searched field mixture, with held-out error and compute."""
    base = env.unwrapped
    space = base.domain_space
    k = len(space.fields)
    rng = np.random.default_rng(config.seed)
    r = np.concatenate([field_mixtures(k, config.runs, rng), rng.dirichlet(np.ones(k), size=config.heldout_runs)])
    steps = config.proxy_steps or base.max_steps
    runs = run_proxies(env, expand(r, space), steps, config.seed, "mixing-laws", config.workers, progress)
    loss = -runs.final_feedback  # (M, K): each field's loss at each run's mixture
    fit, held = slice(0, config.runs), slice(config.runs, None)
    params = [fit_law(r[fit], loss[fit, i], config.starts, config.seed + i) for i in range(k)]
    predicted = np.stack([law(p, r) for p in params], axis=1)
    weights = np.asarray(base.scenario.weights())
    candidates = np.concatenate([np.eye(k), rng.dirichlet(np.ones(k), size=config.search_samples)])
    score = objective(-np.stack([law(p, candidates) for p in params], axis=1), weights)
    best = candidates[int(np.argmax(score))]
    return {
        "scenario": ScenarioInfo.from_env(base).scenario_name, "config": asdict(config),
        "mixture": expand(best, space).tolist(), "field_mixture": best.tolist(), "predicted_score": float(score.max()),
        "best_observed_score": float(objective(-loss[fit], weights).max()), "params": [p.tolist() for p in params],
        "fit_error": float(np.abs(predicted[fit] - loss[fit]).mean()),
        "heldout_error": float(np.abs(predicted[held] - loss[held]).mean()) if config.heldout_runs else None,
        "compute": runs.compute(steps), "staging": str(runs.folder),
    }
