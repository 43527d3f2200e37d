"""The best static mixture and the best schedule of a task, found by search: the references no method beats by luck,
and the headroom of dynamic mixing (`benchmarks/headroom.py`). One implementation for both.

1. Static oracle: a 1-D search over the target share s of (1 - s) p_0 + s p*: a coarse pass, then finer steps
   either side of the best so far, halving until the best's neighbours are within `tolerance` of it (or the step
   reaches `min_step`), every candidate on the same search seeds (paired).
2. Schedule oracle: CMA-ES (`cma`) over a piecewise-linear target share with `knots` knots (logits of the share),
   started at the static oracle's share, every candidate on the same search seeds.
   With `domains` (v3 on), the static search goes on within the fields from the line's best share
   (`leaderboard.domain_search`): the static oracle is then a domain mixture, and `domain_gain` is what
   re-weighting domains adds over the line's best, paired on the confirmation seeds. The schedule search then runs
   twice: on the line, and over the static domain optimum's within-field splits (`baselines.domains.DomainSchedule`,
   started at its target share), whose `domain_headroom` is paired against the static domain optimum.
3. Confirmation: each winner runs again on fresh confirmation seeds, so its score is not the luckiest of many noisy
   ones; the schedule's headroom is its paired difference from the static oracle there, with a 95% t-interval.

Every episode is appended to a JSONL log as it ends; a re-run reads it and runs only what is missing (CMA-ES asks
the same candidates again, since its seed and the scores it is told are the same).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from baselines.domains import DomainSchedule, parse_domain_weights, schedule_spec, target_share
from baselines.static import RandomMixture, TargetSchedule
from dmix_gym.policy import Policy

from .protocol import Objective, SearchConfig, Task
from .scores import mean_std, paired_difference
from .search_log import CONFIRM, RANDOM, SEARCH, EpisodeLog, evaluate, reference_seeds, run_missing


def share_label(share: float) -> str:
    return TargetSchedule((share,)).name


def lasting_share(task: Task, data_dir=None, cache_dir=None) -> float | None:
    """The largest static target share (to 4 decimals) that lasts the task's whole horizon where the target corpus
    runs out and ends the episode; None where every share lasts. A share just above it ends a step early and scores
    far lower, so a grid steps over this cliff: the static search always tries it."""
    from dmix_gym.data import build_data
    from dmix_gym.hf_model import load_hf_model
    from dmix_gym.sampler import MixtureSampler, steps_lasted

    scenario = task.make_scenario()
    train = scenario.train
    # a model of the user's own trains on its own tokenizer's build: other sequences, so another cliff
    tokenizer = None if scenario.hf_model is None else load_hf_model(scenario.hf_model).tokenizer
    shards = build_data(scenario.data, data_dir, cache_dir, progress=False, tokenizer=tokenizer)
    space = shards.domain_space
    sampler = MixtureSampler.for_episode([shards.train_sequences(d) for d in range(space.size)], space.field_of, train,
                                         shards.seq_len)
    per_step = sampler.sequences_per_step
    p0, p_star = np.asarray(space.p0, np.float64), np.asarray(space.p_star, np.float64)
    for k in range(per_step, 0, -1):  # one more target sequence a step each time
        share = np.floor(k / per_step * 1e4) / 1e4
        if steps_lasted(sampler, (1 - share) * p0 + share * p_star, train.max_steps) == train.max_steps:
            return None if k == per_step else float(share)
    return None


def static_search(task: Task, objective: Objective, log: EpisodeLog, config: SearchConfig, workers: int = 1,
                  data_dir=None, cache_dir=None, progress: bool = True) -> dict[str, Any]:
    """The target share with the best mean score on the search seeds (coarse pass, then finer steps around the best)."""
    seeds = reference_seeds(SEARCH, config.search_seeds)
    means: dict[float, float] = {}

    def run(shares) -> None:
        shares = sorted({round(float(s), 4) for s in shares if 0.0 <= s <= 1.0} - set(means))
        scores = evaluate({share_label(s): TargetSchedule((s,)) for s in shares}, seeds, task, objective, log, workers,
                          data_dir, cache_dir, progress)
        means.update({s: float(scores[share_label(s)].mean()) for s in shares})

    cliff = lasting_share(task, data_dir, cache_dir)
    run(config.coarse + (() if cliff is None else (cliff,)))
    for step in config.refine:
        best = max(means, key=means.get)
        run((best - step, best + step))
    step = min(config.refine, default=0.05)
    while True:  # until the best's neighbours at `step` are within noise of it, or the step is as fine as allowed
        best = max(means, key=means.get)
        run((best - step, best + step))
        if max(means, key=means.get) != best:
            continue  # a neighbour won: look around it at the same step
        if max(neighbour_gaps(means, step), default=0.0) <= config.tolerance or step / 2 < config.min_step:
            break
        step /= 2
    best = max(means, key=means.get)
    return {"share": best, "seeds": seeds, "means": {f"{s:g}": m for s, m in sorted(means.items())},
            "neighbour_gaps": neighbour_gaps(means, step), "step": step, "lasting_share": cliff}


def neighbour_gaps(means: dict[float, float], step: float) -> list[float]:
    """How far below the best share's mean score its evaluated neighbours at `step` either side lie."""
    best = max(means, key=means.get)
    near = [s for s in means if s != best and abs(abs(s - best) - step) < 1e-9]
    return [means[best] - means[s] for s in near]


def _knots(x: np.ndarray) -> tuple[float, ...]:
    """Target shares (rounded, so that labels repeat exactly) from CMA-ES's logits."""
    return tuple(round(float(v), 3) for v in 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64))))


def schedule_policy(knots: tuple[float, ...], split: str | None = None) -> Policy:
    """A target-share schedule through `knots`: on the line, or over the within-role splits of the domain spec `split`."""
    return TargetSchedule(knots) if split is None else DomainSchedule(schedule_spec(parse_domain_weights(split), knots))


def schedule_search(task: Task, objective: Objective, log: EpisodeLog, config: SearchConfig, start_share: float,
                    workers: int = 1, data_dir=None, cache_dir=None, progress: bool = True,
                    split: str | None = None) -> dict[str, Any]:
    """The piecewise-linear schedule with the best mean score on the search seeds that CMA-ES finds from `start_share`
    (over the domain spec `split`'s within-role splits, where given)."""
    import cma

    seeds = reference_seeds(SEARCH, config.search_seeds)
    start = np.full(config.knots, np.log(max(start_share, 0.01) / max(1.0 - start_share, 0.01)))
    es = cma.CMAEvolutionStrategy(start, config.sigma, {"popsize": config.population, "seed": config.seed + 1,
                                                        "verbose": -9})
    means: dict[tuple[float, ...], float] = {}
    for _ in range(config.generations):
        asked = es.ask()
        knots = [_knots(x) for x in asked]
        policies = {k: schedule_policy(k, split) for k in knots}
        scores = evaluate({p.name: p for p in policies.values()}, seeds, task, objective, log, workers, data_dir,
                          cache_dir, progress)
        means.update({k: float(scores[p.name].mean()) for k, p in policies.items()})
        es.tell(asked, [-means[k] for k in knots])
    best = max(means, key=means.get)
    return {"knots": list(best), "seeds": seeds, "candidates": len(means), "split": split,
            "means": {schedule_policy(k, split).name: m for k, m in sorted(means.items(), key=lambda item: -item[1])}}


def schedule_oracle(task: Task, objective: Objective, log: EpisodeLog, config: SearchConfig, start_share: float,
                    workers: int, data_dir, cache_dir, progress: bool,
                    split: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the schedule search from `start_share`, its confirmed best): on the line, or over the domain spec `split`."""
    search = schedule_search(task, objective, log, config, start_share, workers, data_dir, cache_dir, progress, split)
    best = schedule_policy(tuple(search["knots"]), split)
    return search, confirmed(best.name, best, task, objective, log, config, workers, data_dir, cache_dir, progress)


def confirmed(label: str, policy: Policy, task: Task, objective: Objective, log: EpisodeLog, config: SearchConfig,
              workers: int, data_dir, cache_dir, progress: bool) -> dict[str, Any]:
    """`policy`'s scores on the confirmation seeds, with their mean and std."""
    seeds = reference_seeds(CONFIRM, config.confirm_seeds)
    scores = evaluate({label: policy}, seeds, task, objective, log, workers, data_dir, cache_dir, progress)[label]
    mean, std = mean_std(scores)
    return {"label": label, "seeds": seeds, "scores": scores.tolist(), "mean": mean, "std": std}


def domain_oracle(task: Task, objective: Objective, log: EpisodeLog, config: SearchConfig, static: dict[str, Any],
                  workers: int, data_dir, cache_dir, progress: bool) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(the domain search, its confirmed best) from the line's static search; None where no field has two domains."""
    from baselines.domains import DomainMixture

    from .domain_search import domain_search, searchable, task_domain_space

    space = task_domain_space(task, data_dir, cache_dir)
    if not searchable(space):
        return None
    share = static["share"]
    search = domain_search(task, objective, log, config, share, static["means"][f"{share:g}"], space, workers, data_dir,
                           cache_dir, progress)
    best = search["spec"]
    policy = DomainMixture(best) if best != search["line"] else TargetSchedule((share,))
    label = best if best != search["line"] else share_label(share)  # the line's own best: its confirmed episodes
    return search, confirmed(label, policy, task, objective, log, config, workers, data_dir, cache_dir, progress)


def oracles(task: Task, objective: Objective, log: EpisodeLog, config: SearchConfig, schedules: bool = True,
            workers: int = 1, data_dir=None, cache_dir=None, progress: bool = True) -> dict[str, Any]:
    """A task's references: random mixtures (ref_min), the static oracle and, with `schedules`, the schedule oracle and
    the headroom of dynamic mixing (schedule − static on the confirmation seeds), each with its seeds and episodes."""
    args = (workers, data_dir, cache_dir, progress)
    random_seeds = reference_seeds(RANDOM, config.random_episodes)
    # one policy per episode: each draws its own stream of mixtures, whichever worker runs it
    run_missing([(f"random/{i}", RandomMixture(seed=i), seed) for i, seed in enumerate(random_seeds)], task, objective,
                log, *args)
    random = np.array([log.score(f"random/{i}", seed) for i, seed in enumerate(random_seeds)])
    static = static_search(task, objective, log, config, *args)
    result: dict[str, Any] = {
        "config": asdict(config), "task": task.name,
        "random": {"seeds": random_seeds, "scores": random.tolist(), "mean": mean_std(random)[0], "std": mean_std(random)[1]},
        "static_search": static,
        "static": confirmed(share_label(static["share"]), TargetSchedule((static["share"],)), task, objective, log, config,
                            *args),
    }
    if config.domains:
        domain = domain_oracle(task, objective, log, config, static, *args)
        if domain is not None:
            result["domain_search"], result["domain"] = domain
            result["domain_gain"] = paired_difference(result["domain"]["scores"], result["static"]["scores"])
    if schedules:
        result["schedule_search"], result["schedule"] = schedule_oracle(task, objective, log, config, static["share"], *args)
        result["headroom"] = paired_difference(result["schedule"]["scores"], result["static"]["scores"])
    if schedules and "domain" in result and result["domain"]["label"].startswith("domains:"):
        split = result["domain"]["label"]
        result["domain_schedule_search"], result["domain_schedule"] = schedule_oracle(
            task, objective, log, config, target_share(parse_domain_weights(split)), *args, split=split)
        result["domain_headroom"] = paired_difference(result["domain_schedule"]["scores"], result["domain"]["scores"])
    result["episodes"] = len(log.records)
    result["episode_seconds"] = round(sum(r.get("seconds", 0.0) for r in log.records.values()), 1)
    return result
