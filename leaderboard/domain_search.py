"""The best static domain mixture of a task: a search over within-field domain splits, not only the target share.

The line (1 - s) p_0 + s p* keeps every field's domains in their natural proportions; the env's action space does
not. Starting from the line's best share s (`oracle.static_search`), two strategies search the simplex, every
candidate a `baselines.domains` spec run on the same search seeds (paired), every episode logged and resumable:

1. Structured (coordinate) search: all of the target share on one target domain, for each target domain; half of
   the source share on one source domain, for each source domain; then the best few of each role two at a time
   and half-and-half with the natural split, the best target split with the best source tilt; then the best split
   at other target shares.
2. Model-based search (Bayesian optimisation): a Gaussian process over every logged episode of the task (its mean
   mixture -> its score: the line's, the random ones, the structured candidates), whose upper confidence bound picks
   the next candidates among Dirichlet draws around the best mixture so far; refitted each round.

`trail` records the best mean score against episodes spent after each stage: the search's convergence.
"""

from __future__ import annotations

import warnings
from itertools import combinations
from typing import Any

import numpy as np

from baselines.domains import DomainMixture, domain_spec, local_names, parse_domain_weights, resolve_domain_weights, role_of_domains
from dmix_gym.data.domains import DomainSpace

from .protocol import Objective, SearchConfig, Task
from .search_log import SEARCH, EpisodeLog, evaluate, reference_seeds


def task_domain_space(task: Task, data_dir=None, cache_dir=None) -> DomainSpace:
    """The domain space a task's policies act in (after its wrapper: the per-field space for `source-space`)."""
    from dmix_gym.policy import ScenarioInfo

    return ScenarioInfo.from_env(task.make_env(data_dir, cache_dir)).domain_space


def searchable(space: DomainSpace) -> bool:
    """Whether a domain space has a within-field split to search (a field with more than one domain)."""
    return len(space.names) > len(space.fields)


def line_weights(share: float) -> dict[str, float]:
    return {"source": 1.0 - share, "target": share}


def split_of(weights: dict[str, float], role: str) -> dict[str, float]:
    """A spec's keys of one role, as a distribution within the role (summing to 1)."""
    part = {k: w for k, w in weights.items() if k.split("/")[0] == role}
    total = sum(part.values())
    return {k: w / total for k, w in part.items()} if total > 0 else {role: 1.0}


def compose(source: dict[str, float], target: dict[str, float], share: float) -> str:
    """The spec giving the target roles `share`, split as `target`, and the source the rest, split as `source`."""
    weights = {k: (1.0 - share) * w for k, w in source.items()}
    weights.update({k: share * w for k, w in target.items()})
    return domain_spec(weights)


def blend(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    """Half of one within-role split and half of another."""
    return {k: (a.get(k, 0.0) + b.get(k, 0.0)) / 2 for k in dict.fromkeys([*a, *b])}


def mixture_spec(mixture: np.ndarray, space: DomainSpace) -> str:
    """A full mixture of a domain space as a spec naming every domain by role."""
    keys = [f"{role}/{name}" for role, name in zip(role_of_domains(space), local_names(space))]
    return domain_spec(dict(zip(keys, mixture)))


def logged_mixture(label: str, record: dict[str, Any], space: DomainSpace) -> np.ndarray | None:
    """An episode's mean mixture: logged with it, or (an older log's line episodes) rebuilt from its target share."""
    if record.get("mixture") and len(record["mixture"]) == space.size:
        return np.asarray(record["mixture"], np.float64)
    if label.startswith("static:target-share="):
        share = float(label.partition("=")[2])
        return (1 - share) * np.asarray(space.p0, np.float64) + share * np.asarray(space.p_star, np.float64)
    return None


def propose(log: EpisodeLog, space: DomainSpace, best: np.ndarray, tried: set[str], seeds: list[int], n: int, seed: int,
            draws: int = 4000) -> list[str]:
    """`n` new specs with the highest upper confidence bound of a GP fitted on the search-seed episodes of the line
    and of the specs `tried` so far (the same episodes whenever the search resumes, so it proposes the same)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    known = [(label, r) for (label, s), r in sorted(log.records.items()) if s in seeds and
             (label in tried or label.startswith("static:target-share="))]
    rows = [(logged_mixture(label, r, space), r["score"]) for label, r in known]
    rows = [(x, y) for x, y in rows if x is not None]
    x, y = np.stack([r[0] for r in rows]), np.array([r[1] for r in rows])
    kernel = ConstantKernel(1.0) * RBF(length_scale=0.3, length_scale_bounds=(1e-2, 10.0)) + WhiteKernel(1e-3)
    with warnings.catch_warnings():  # a bound the fit reaches (no noise on a few points) is no reason to stop
        warnings.simplefilter("ignore", ConvergenceWarning)
        gp = GaussianProcessRegressor(kernel, normalize_y=True, random_state=seed).fit(x, y)
    rng = np.random.default_rng(seed)
    concentration = rng.choice([20.0, 50.0, 200.0], size=draws)[:, None]  # near and far from the best mixture
    candidates = np.stack([rng.dirichlet(c * best + 0.05) for c in concentration[:, 0]])
    mean, std = gp.predict(candidates, return_std=True)
    chosen: list[str] = []
    for i in np.argsort(-(mean + std)):
        spec = mixture_spec(candidates[i], space)
        if spec not in tried and spec not in chosen:
            chosen.append(spec)
        if len(chosen) == n:
            break
    return chosen


def domain_search(task: Task, objective: Objective, log: EpisodeLog, config: SearchConfig, share: float,
                  line_mean: float, space: DomainSpace, workers: int = 1, data_dir=None, cache_dir=None,
                  progress: bool = True) -> dict[str, Any]:
    """The static domain mixture with the best mean score on the search seeds (see the module docstring), starting
    from the line's best `share` (whose mean score there is `line_mean`)."""
    seeds = reference_seeds(SEARCH, config.search_seeds)
    line = domain_spec(line_weights(share))
    means: dict[str, float] = {line: line_mean}
    trail: list[dict[str, Any]] = []

    def run(stage: str, specs: list[str]) -> None:
        new = [s for s in dict.fromkeys(specs) if s not in means]
        scores = evaluate({s: DomainMixture(s) for s in new}, seeds, task, objective, log, workers, data_dir, cache_dir,
                          progress)
        means.update({s: float(v.mean()) for s, v in scores.items()})
        best = max(means, key=means.get)
        trail.append({"stage": stage, "episodes": len(log.records), "candidates": len(means), "best": best,
                      "best_mean": means[best]})

    def best_of(specs: list[str], k: int) -> list[str]:
        return sorted(specs, key=lambda s: -means[s])[:k]

    roles, names = role_of_domains(space), local_names(space)
    target_keys = [f"target/{n}" for n, r in zip(names, roles) if r == "target"]
    source_keys = [f"source/{n}" for n, r in zip(names, roles) if r == "source"]
    natural_source, natural_target = {"source": 1.0}, {"target": 1.0}
    target_corners = [compose(natural_source, {k: 1.0}, share) for k in target_keys] if len(target_keys) > 1 else []
    source_tilts = [compose(blend(natural_source, {k: 1.0}), natural_target, share) for k in source_keys] \
        if len(source_keys) > 1 else []
    run("corners", target_corners + source_tilts)

    top_target = [split_of(parse_domain_weights(s), "target") for s in best_of(target_corners, config.domain_pairs)]
    top_source = [split_of(parse_domain_weights(s), "source") for s in best_of(source_tilts, config.domain_pairs)]
    pairs = [compose(natural_source, blend(a, b), share) for a, b in combinations(top_target, 2)]
    pairs += [compose(natural_source, blend(a, natural_target), share) for a in top_target]
    pairs += [compose(blend(a, b), natural_target, share) for a, b in combinations(top_source, 2)]
    best = parse_domain_weights(max(means, key=means.get))
    pairs += [compose(s, split_of(best, "target"), share) for s in top_source[:1]]
    run("pairs", pairs)

    best = parse_domain_weights(max(means, key=means.get))
    shares = [share * m for m in config.share_multiples if 0.0 < share * m < 1.0]
    run("share", [compose(split_of(best, "source"), split_of(best, "target"), s) for s in shares])

    for round_ in range(config.model_rounds):
        incumbent = resolve_domain_weights(parse_domain_weights(max(means, key=means.get)), space)
        run(f"model-{round_ + 1}", propose(log, space, incumbent, set(means), seeds, config.model_proposals,
                                           config.seed + round_))
    best_spec = max(means, key=means.get)
    ranked = sorted(means.items(), key=lambda item: -item[1])
    return {"spec": best_spec, "mean": means[best_spec], "line": line, "line_mean": line_mean, "seeds": seeds,
            "candidates": len(means), "trail": trail, "means": dict(ranked[:25])}
