"""Data Mixing Laws (Ye et al. 2024, "Data Mixing Laws: Optimizing Data Mixtures by Predicting Language
Modeling Performance"): fit how each field's loss depends on the mixture over domains, then pick the mixture the
fitted laws say is best.

1. Proxy runs at a handful of domain mixtures (the field shares: every pure field, then Dirichlet(1) draws; within a
   field, a Dirichlet split around its natural one, concentrated or sparse as RegMix samples), through the same
   staged, resumable runner as RegMix. A few more runs are held out to report the laws' prediction error.
2. Per field i, the paper's exponential law (eq. 1 with domains as its mixture components), on the field's loss
   L_i = -f_i:
       L_i(x) = c_i + k_i * exp(sum_j t_ij x_j)
   fitted by least squares (several starts, the best kept).
3. The mixture maximising the objective sum_i lambda_i f_i (the env's reward weights) under the fitted laws, held for
   the whole episode. Every law is convex in x, so the objective is concave on the simplex: a local search from the
   best of many random mixtures finds its maximum.

Departures: the paper extrapolates laws across training steps and model sizes from small runs; here every run is a
whole proxy episode of the scenario (`proxy_steps`, default the scenario's own), so the laws see the forgetting the
reward measures. With few runs and many domains the per-domain exponents are shrunk toward their field's
(t_ij = T_i,field(j) + d_ij, a penalty on d chosen by leave-one-out error over `penalties`). The grid runs from
nearly free domain exponents to the per-field law (an infinite penalty: every d is 0), so the runs choose
how much domain detail they support: on v3's tasks (8 runs, 16 domains) a grid that stopped at 1 chose its edge on
every task and fitted laws whose maximum was an all-source split no run had tried (held-out error 0.9 to 1.7 nats).
The penalty is the largest whose leave-one-out error is within one standard error of the lowest (`penalty_rule`):
taking the lowest chose 100 over the per-field law by 0.003 nats on in-distribution, and its maximum put 0.43 of
the mixture on one source domain, a direction 8 runs barely constrain.
`domains=False` fits the per-field law alone (dmix-bench-v2's Mixing laws, domains split like p0 and p*).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from dmix_gym.data.domains import DomainSpace, collapse, expand
from dmix_gym.errors import ConfigError
from dmix_gym.feedback import objective
from dmix_gym.policy import ScenarioInfo

from .fitted import FittedMixture
from .proxy_runs import run_proxies

PENALTY_RULES = ("one-se", "min")


@dataclass(frozen=True)
class MixingLawsConfig:
    runs: int = 8  # proxy runs the laws are fitted on (the K pure fields among them)
    heldout_runs: int = 2  # more runs, only to report the laws' prediction error
    proxy_steps: int | None = None  # steps per run (None: the scenario's max_steps)
    starts: int = 8  # least-squares starts per field
    search_samples: int = 50_000
    domains: bool = True  # laws over domains (False: over fields, each split like p0 / p*, as dmix-bench-v2 ran them)
    min_concentration: float = 0.3  # the runs' within-field splits: Dirichlet(c * natural * n), c log-uniform in
    max_concentration: float = 3.0  # [min, max] per run (small c: sparse splits, large: near the natural one)
    penalties: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, float("inf"))  # domain exponents' shrinkage
    penalty_rule: str = "one-se"  # how leave-one-out error chooses the penalty: "one-se" or "min"
    workers: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.runs < 2 or self.heldout_runs < 0 or self.starts < 1 or self.search_samples < 1:
            raise ConfigError(f"MixingLawsConfig needs runs >= 2, heldout_runs >= 0, starts and search_samples >= 1, "
                              f"got {self.runs}, {self.heldout_runs}, {self.starts}, {self.search_samples}")
        if not 0 < self.min_concentration <= self.max_concentration:
            raise ConfigError(f"MixingLawsConfig needs 0 < min_concentration <= max_concentration, got "
                              f"{self.min_concentration}, {self.max_concentration}")
        if self.penalty_rule not in PENALTY_RULES:
            raise ConfigError(f"MixingLawsConfig.penalty_rule must be one of {', '.join(PENALTY_RULES)}, got "
                              f"{self.penalty_rule!r}")
        if not self.penalties or min(self.penalties) < 0:
            raise ConfigError(f"MixingLawsConfig.penalties must be non-negative, got {self.penalties}")


def law(params: np.ndarray, r: np.ndarray) -> np.ndarray:
    """L(r) = c + exp(log k + r @ t), params = (c, log k, t_1..t_n); r is (m, n)."""
    return params[0] + np.exp(params[1] + np.asarray(r) @ params[2:])


def fit_law(r: np.ndarray, loss: np.ndarray, starts: int = 8, seed: int = 0, groups: np.ndarray | None = None,
            penalty: float = 0.0) -> np.ndarray:
    """Least-squares parameters of `law` for one field's losses at the mixtures r (best of several starts).

    With `groups` (each component's group, e.g. its field), each exponent is its group's plus its own deviation,
    and the deviations pay `penalty` * their squared size: few runs then still fit many components.
    """
    from scipy.optimize import least_squares

    r, loss = np.asarray(r, np.float64), np.asarray(loss, np.float64)
    hierarchical = groups is not None and int(np.max(groups)) + 1 < r.shape[1]
    groups = np.arange(r.shape[1]) if groups is None else np.asarray(groups, np.int64)
    n_groups = int(groups.max()) + 1
    if hierarchical and np.isinf(penalty):  # infinite shrinkage: every component at its group's exponent
        per_group = fit_law(r @ np.eye(n_groups)[groups], loss, starts, seed)
        return np.concatenate([per_group[:2], per_group[2:][groups]])

    def exponents(p: np.ndarray) -> np.ndarray:
        return p[2 : 2 + n_groups][groups] + p[2 + n_groups :] if hierarchical else p[2:]

    def residuals(p: np.ndarray) -> np.ndarray:
        fit = p[0] + np.exp(p[1] + r @ exponents(p)) - loss
        return np.concatenate([fit, np.sqrt(penalty) * p[2 + n_groups :]]) if hierarchical else fit

    rng = np.random.default_rng(seed)
    spread = max(float(np.ptp(loss)), 1e-3)
    size = (n_groups + r.shape[1]) if hierarchical else r.shape[1]
    best = None
    for _ in range(starts):
        level = [loss.min() - spread * rng.uniform(0.05, 1.0), np.log(spread) + rng.normal(0, 0.5)]
        slopes = rng.normal(0, 1.0, size)
        if hierarchical:
            slopes[n_groups:] = 0.0  # every domain starts at its group's exponent
        x0 = np.concatenate([level, slopes])
        result = least_squares(residuals, x0, method="trf", max_nfev=2000)
        if best is None or result.cost < best.cost:
            best = result
    return np.concatenate([best.x[:2], exponents(best.x)])


def loo_errors(r: np.ndarray, loss: np.ndarray, starts: int, seed: int, groups: np.ndarray, penalty: float) -> np.ndarray:
    """(runs,) absolute error of each run's loss predicted by the law fitted without it."""
    errors = []
    for i in range(len(r)):
        keep = np.arange(len(r)) != i
        params = fit_law(r[keep], loss[keep], starts, seed, groups, penalty)
        errors.append(abs(float(law(params, r[i : i + 1])[0]) - loss[i]))
    return np.asarray(errors)


def one_standard_error(errors: dict[float, np.ndarray]) -> float:
    """The largest penalty (the simplest law) whose mean error is within one standard error of the lowest mean: the
    usual guard against choosing by noise (Hastie et al., ESL 7.10). `errors`: each penalty's per-run errors."""
    lowest = min(errors, key=lambda p: errors[p].mean())
    runs = errors[lowest]
    bar = runs.mean() + runs.std(ddof=1) / np.sqrt(len(runs))
    return max(p for p, e in errors.items() if e.mean() <= bar)


def choose_penalty(x: np.ndarray, loss: np.ndarray, groups: np.ndarray, penalties: tuple[float, ...],
                   config: MixingLawsConfig) -> tuple[float, dict[float, float | None]]:
    """The penalty of `penalties` whose laws (one per field: `loss` is (runs, K)) predict each run left out best, by
    `config.penalty_rule` ("min": the lowest mean error; "one-se": the simplest law within one standard error of it),
    and each one's mean leave-one-out error (None where there is only one to choose)."""
    if len(penalties) == 1:
        return penalties[0], {penalties[0]: None}
    k = loss.shape[1]
    per_run = {p: np.mean([loo_errors(x, loss[:, i], config.starts, config.seed + i, groups, p) for i in range(k)], axis=0)
               for p in penalties}  # each run's error, averaged over the fields' laws
    errors = {p: float(e.mean()) for p, e in per_run.items()}
    chosen = one_standard_error(per_run) if config.penalty_rule == "one-se" else min(errors, key=errors.get)
    return chosen, errors


def field_mixtures(k: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, K) points on the simplex: the K pure fields first, then Dirichlet(1) draws."""
    corners = np.eye(k)[:n]
    return np.concatenate([corners, rng.dirichlet(np.ones(k), size=max(0, n - k))])


def natural_within(space: DomainSpace) -> np.ndarray:
    """(D,) each domain's share of its own field in the natural splits (p0 for the source, p* for the targets)."""
    return expand(np.ones(len(space.fields)), space)


def domain_mixtures(fields: np.ndarray, space: DomainSpace, rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    """(n, D) mixtures giving each field its share in `fields` (n, K), split within the field by a Dirichlet draw
    around its natural split at a concentration log-uniform in [low, high] per mixture."""
    natural, field_of = natural_within(space), np.asarray(space.field_of)
    sizes = np.bincount(field_of, minlength=len(space.fields))[field_of]
    mixtures = np.zeros((len(fields), space.size))
    for i, shares in enumerate(np.asarray(fields, np.float64)):
        c = np.exp(rng.uniform(np.log(low), np.log(high)))
        split = rng.gamma(np.maximum(c * natural * sizes, 1e-3))
        for field in range(len(space.fields)):
            members = field_of == field
            total = split[members].sum()
            split[members] = split[members] / total if total > 0 else natural[members]
        mixtures[i] = shares[field_of] * split
    return mixtures


def search_candidates(fields: np.ndarray, space: DomainSpace, rng: np.random.Generator,
                      config: MixingLawsConfig) -> np.ndarray:
    """Where the domain laws' maximum is searched: each field mixture at its natural within-field split, each single
    domain, and a random within-field split around each field mixture."""
    return np.concatenate([expand(fields, space), np.eye(space.size),
                           domain_mixtures(fields, space, rng, config.min_concentration, config.max_concentration)])


def best_mixture(params: list[np.ndarray], weights: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """The mixture maximising sum_i weights_i * (-law_i): the best candidate, then a local search on the simplex
    (the objective is concave there, so that is its maximum)."""
    from scipy.optimize import minimize

    def loss(x: np.ndarray) -> float:
        return float(sum(w * law(p, x[None])[0] for p, w in zip(params, weights)))

    scores = -sum(w * law(p, candidates) for p, w in zip(params, weights))
    start = candidates[int(np.argmax(scores))]
    result = minimize(loss, start, method="SLSQP", bounds=[(0.0, 1.0)] * len(start),
                      constraints=({"type": "eq", "fun": lambda x: x.sum() - 1.0},), options={"maxiter": 500})
    found = np.clip(result.x, 0.0, None) if result.success else start
    found = found / found.sum()
    return found if loss(found) <= loss(start) else start


class MixingLaws(FittedMixture):
    """The mixture that fitted data mixing laws predict is best for the scenario, held static."""

    name, kind = "baseline:mixing-laws", "mixing-laws"

    def __init__(self, config: MixingLawsConfig = MixingLawsConfig()):
        super().__init__(config)

    def fit(self, env, progress: bool) -> dict[str, Any]:
        return fit_mixing_laws(env, self.config, progress)


def fit_mixing_laws(env, config: MixingLawsConfig, progress: bool = True) -> dict[str, Any]:
    """Proxy runs -> one law per field -> the searched mixture, with held-out error and compute."""
    base = env.unwrapped
    space = base.domain_space
    k = len(space.fields)
    rng = np.random.default_rng(config.seed)
    fields = np.concatenate([field_mixtures(k, config.runs, rng), rng.dirichlet(np.ones(k), size=config.heldout_runs)])
    by_domain = config.domains and space.size > k
    mixtures = (domain_mixtures(fields, space, rng, config.min_concentration, config.max_concentration) if by_domain
                else expand(fields, space))
    steps = config.proxy_steps or base.max_steps
    runs = run_proxies(env, mixtures, steps, config.seed, "mixing-laws", config.workers, progress)
    x = runs.mixtures if by_domain else collapse(runs.mixtures, space)
    groups = np.asarray(space.field_of) if by_domain else np.arange(k)
    loss = -runs.final_feedback  # (M, K): each field's loss at each run's mixture
    fit, held = slice(0, config.runs), slice(config.runs, None)
    penalty, errors = choose_penalty(x[fit], loss[fit], groups, config.penalties if by_domain else (0.0,), config)
    params = [fit_law(x[fit], loss[fit, i], config.starts, config.seed + i, groups, penalty) for i in range(k)]
    predicted = np.stack([law(p, x) for p in params], axis=1)
    weights = np.asarray(base.scenario.weights())
    candidate_fields = np.concatenate([np.eye(k), rng.dirichlet(np.ones(k), size=config.search_samples)])
    if by_domain:
        best = best_mixture(params, weights, search_candidates(candidate_fields, space, rng, config))
    else:
        best = expand(best_mixture(params, weights, candidate_fields), space)
    point = best if by_domain else collapse(best, space)  # where the laws read the mixture
    return {
        "scenario": ScenarioInfo.from_env(base).scenario_name, "config": asdict(config),
        "mixture": best.tolist(), "field_mixture": collapse(best, space).tolist(),
        "predicted_score": float(objective(-np.array([law(p, point[None])[0] for p in params]), weights)),
        "best_observed_score": float(objective(-loss[fit], weights).max()), "params": [p.tolist() for p in params],
        "penalty": penalty, "loo_error": {f"{p:g}": e for p, e in errors.items()},
        "fit_error": float(np.abs(predicted[fit] - loss[fit]).mean()),
        "heldout_error": float(np.abs(predicted[held] - loss[held]).mean()) if config.heldout_runs else None,
        "compute": runs.compute(steps), "staging": str(runs.folder),
    }
