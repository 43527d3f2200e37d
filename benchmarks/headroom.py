"""Where does dynamic mixing pay? The headroom of time-varying mixtures in the regimes the literature names.

For a regime (a scenario with options: a WSD learning-rate schedule, a scarce target corpus, a longer horizon,
other objective weights), `leaderboard.oracle` finds the static oracle (1-D search over the target share) and the
schedule oracle (CMA-ES over a piecewise-linear target share), confirms both on fresh reference seeds and reports
the headroom: schedule − static, paired by seed, with its 95% interval. Scores are the dmix-bench-v2 objective
(with the regime's own field weights where it sets them).

Every episode is appended to `results/headroom/<regime>/episodes.jsonl` as it ends (commit it: a re-run on any
machine runs only what is missing); the regime's result is `result.json` beside it.

    python benchmarks/headroom.py --regime wsd --workers 2      # a built-in regime
    python benchmarks/headroom.py --scenario general-math --set lr_schedule=wsd --set decay_fraction=0.3 --name wsd30
    python benchmarks/headroom.py --table                         # the README's table from every finished regime
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results" / "headroom"

# name: (scenario overrides, objective field weights (source, target) or None for the balanced score, description)
REGIMES: dict[str, tuple[dict, tuple[float, float] | None, str]] = {
    "base": ({}, None, "the in-distribution task as dmix-bench-v2 runs it (cosine schedule, 20 steps, balanced)"),
    "wsd": ({"lr_schedule": "wsd", "decay_fraction": 0.2}, None,
            "warmup-stable-decay: the peak learning rate until the last 20% of the steps, then a linear anneal"),
    "target-heavy": ({}, (0.2, 0.8), "objective weights 0.2 source / 0.8 target (standardised units)"),
    "forgetting-heavy": ({}, (0.8, 0.2), "objective weights 0.8 source / 0.2 target (standardised units)"),
    "wsd-target-heavy": ({"lr_schedule": "wsd", "decay_fraction": 0.2}, (0.2, 0.8), "WSD and target-heavy weights"),
    "scarce-repeat": ({"target_fraction": 0.01, "on_exhausted": "repeat"}, None,
                      "1% of each target domain's sequences (about 250, fewer than the static optimum draws), re-read when used up"),
    "scarce-terminate": ({"target_fraction": 0.01}, None,
                         "1% of each target domain's sequences; the episode ends when the target field is used up"),
    "long": ({"max_steps": 60}, None, "a horizon 3x longer: 60 steps of the same tokens per step"),
}


def headroom_config():
    """The search every regime gets (about 45 episodes): smaller than the v2 references', the same for all regimes."""
    from leaderboard.protocol import SearchConfig

    return SearchConfig(coarse=(0.05, 0.15, 0.3, 0.5, 0.8), refine=(0.05,), search_seeds=2, confirm_seeds=5,
                        random_episodes=1, knots=3, generations=2, population=6)


def regime_task(scenario: str, overrides: dict, weights: tuple[float, float] | None, name: str):
    """The regime as a leaderboard task (the v2 in-distribution task's model and objective, with the regime's options)."""
    from leaderboard.protocol import V2_OBJECTIVE, Task

    objective = V2_OBJECTIVE if weights is None else replace(V2_OBJECTIVE, weights=tuple(weights))
    return Task(name, scenario, "cpu", (), tuple(sorted(overrides.items())), objective=objective,
                description=f"headroom regime {name}")


def run_regime(name: str, task, workers: int, description: str, root: Path = RESULTS, config=None, data_dir=None) -> dict:
    """Search (or resume) a regime's oracles with `dmix search`'s machinery; write and return its result."""
    from leaderboard.recommend import search_mixture

    extra = {"regime": name, "description": description, "scenario": task.scenario, "overrides": dict(task.overrides),
             "objective_weights": task.objective.field_weights().tolist()}
    return search_mixture(task, root / name, config or headroom_config(), schedules=True, workers=workers,
                          data_dir=data_dir, extra=extra)


def follow_up(name: str, task, specs: list[str], seeds: int, workers: int, root: Path = RESULTS, data_dir=None) -> dict:
    """More confirmation: each policy spec (the first is the one the others are compared with) on `seeds` confirmation
    seeds after the regime's own, which no search has seen, paired by seed; written to `follow-up.json`."""
    from dmix_gym.utils.atomic import write_json
    from leaderboard.registry import load_policy
    from leaderboard.scores import mean_std, paired_difference
    from leaderboard.search_log import CONFIRM, EpisodeLog, evaluate, reference_seeds

    folder = root / name
    first = json.loads((folder / "result.json").read_text())["config"]["confirm_seeds"]  # after the regime's own
    chosen = reference_seeds(CONFIRM, first + seeds)[first:]
    scores = evaluate({spec: load_policy(spec) for spec in specs}, chosen, task, task.objective,
                      EpisodeLog(folder / "episodes.jsonl"), workers, data_dir)
    base = scores[specs[0]]
    result = {"seeds": chosen, "against": specs[0],
              "policies": {spec: {**dict(zip(("mean", "std"), mean_std(v))), "scores": v.tolist(),
                                  **({} if spec == specs[0] else {"difference": paired_difference(v, base)})}
                           for spec, v in scores.items()}}
    write_json(folder / "follow-up.json", result)
    return result


def table(root: Path = RESULTS) -> str:
    """The headroom table (Markdown) of every finished regime."""
    rows = ["| regime | static oracle (share) | schedule oracle (knots) | headroom [95% CI] | 2 × paired std | episodes |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for path in sorted(root.glob("*/result.json")):
        r = json.loads(path.read_text())
        h, s, d = r["headroom"], r["static"], r["schedule"]
        share = r["static_search"]["share"]
        knots = ", ".join(f"{k:g}" for k in r["schedule_search"]["knots"])
        rows.append(f"| {r['regime']} | {s['mean']:.3f} ± {s['std']:.3f} ({share:g}) | {d['mean']:.3f} ± {d['std']:.3f} "
                    f"({knots}) | {h['mean']:+.3f} [{h['low']:+.3f}, {h['high']:+.3f}] | {2 * h['std']:.3f} | {r['episodes']} |")
    return "\n".join(rows)


def plot(root: Path = RESULTS) -> Path:
    """Each finished regime's oracles drawn: the static share (dashed) and the schedule oracle's target share over the
    episode, with the headroom in the title; written to `schedules.png` beside the regimes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from baselines.static import share_at

    results = [json.loads(path.read_text()) for path in sorted(root.glob("*/result.json"))]
    fig, axes = plt.subplots(1, max(1, len(results)), figsize=(3.2 * max(1, len(results)), 2.8), sharey=True, squeeze=False)
    progress = np.linspace(0.0, 1.0, 101)
    for ax, r in zip(axes[0], results):
        h = r["headroom"]
        ax.axhline(r["static_search"]["share"], ls="--", color="gray", label="static oracle")
        ax.plot(progress, [share_at(tuple(r["schedule_search"]["knots"]), x) for x in progress], label="schedule oracle")
        ax.set(title=f"{r['regime']}\n{h['mean']:+.3f} [{h['low']:+.3f}, {h['high']:+.3f}]", xlabel="episode progress")
    axes[0][0].set_ylabel("target share")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(root / "schedules.png", dpi=120)
    return root / "schedules.png"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--regime", action="append", choices=sorted(REGIMES), help="built-in regime(s) to run, in order")
    parser.add_argument("--scenario", help="a scenario name or JSON file, for a regime of your own")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a scenario option (repeatable)")
    parser.add_argument("--target-weight", type=float, help="the objective's weight on the target field (source: 1 - it)")
    parser.add_argument("--name", help="the name of a regime of your own (its results folder)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--table", action="store_true", help="print the table of finished regimes and stop")
    parser.add_argument("--follow-up", action="append", metavar="SPEC",
                        help="with one --regime: run these policies (the first is the comparison) on fresh confirmation seeds")
    parser.add_argument("--seeds", type=int, default=8, help="--follow-up's fresh seeds")
    args = parser.parse_args(argv)
    if args.table:
        print(table())
        print(f"drawn: {plot()}")
        return
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // max(1, args.workers))))
    from dmix_gym.scenario import parse_options

    jobs = []
    for name in args.regime or []:
        overrides, weights, description = REGIMES[name]
        jobs.append((name, regime_task("general-math", overrides, weights, name), description))
    if args.scenario:
        if not args.name:
            parser.error("--scenario needs --name (the results folder)")
        overrides = parse_options(args.set)
        weights = None if args.target_weight is None else (1.0 - args.target_weight, args.target_weight)
        jobs.append((args.name, regime_task(args.scenario, overrides, weights, args.name), f"{args.scenario} with {overrides}"))
    if not jobs:
        parser.error("name a --regime, or a --scenario with --name, or ask for the --table")
    if args.follow_up:
        name, task, _ = jobs[0]
        for spec, r in follow_up(name, task, args.follow_up, args.seeds, args.workers)["policies"].items():
            d = r.get("difference")
            versus = "" if d is None else f", minus the first {d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"
            print(f"{spec}: {r['mean']:.3f} ± {r['std']:.3f}{versus}", flush=True)
        return
    for name, task, description in jobs:
        task.make_scenario()  # a bad option fails here, before any episode
        result = run_regime(name, task, args.workers, description)
        h = result["headroom"]
        print(f"{name}: static {result['static']['mean']:.3f} (share {result['static_search']['share']:g}), schedule "
              f"{result['schedule']['mean']:.3f} {result['schedule_search']['knots']}, headroom {h['mean']:+.3f} "
              f"[{h['low']:+.3f}, {h['high']:+.3f}]", flush=True)


if __name__ == "__main__":
    main()
