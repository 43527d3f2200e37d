"""The trade-off the benchmark exists for, measured: final feedback after a whole episode at a fixed target share.

For each scenario, static mixtures (1 - s) p0 + s p* for s in --shares, --seeds episodes each, at a
preset. Each finished episode is written atomically to `<out>/<preset>/<scenario>/s<share>-seed<seed>.json`
(commit them: a re-run, on any machine, skips what is there), then the summary checks, per scenario:

1. forgetting: f(source) at s = 1 lies below s = 0 by more than 5x the seed std;
2. an interior optimum: the best share by the reward's sum of feedback is strictly inside (0, 1);
3. all-target loses: the sum at s = 1 lies below the best by more than 2x the seed std.

    python benchmarks/mixture_sweep.py --preset cpu --workers 2
    python benchmarks/mixture_sweep.py --preset smoke --scenarios general-math --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

DEFAULT_SCENARIOS = ["general-math", "general-code", "wiki-math", "dbpedia-math"]
SEED_BASE = 2_000_000  # away from collection (< 1e6) and leaderboard (1e6 + ...) seeds
RESULTS = Path(__file__).resolve().parent / "results" / "mixture_sweep"

_ENVS: dict = {}


def _env(scenario: str, preset: str):
    import gymnasium as gym

    import dmix_gym  # noqa: F401  (registers DataMix-v0)

    if (scenario, preset) not in _ENVS:
        _ENVS[scenario, preset] = gym.make("DataMix-v0", scenario=scenario, preset=preset, progress=False, timing=True)
    return _ENVS[scenario, preset]


def run_point(scenario: str, preset: str, share: float, seed: int, path: str) -> dict:
    """One episode at a fixed target share; its finals, written atomically to `path`."""
    from dmix_gym.policy import Replay, rollout
    from dmix_gym.utils.atomic import write_json

    env = _env(scenario, preset)
    base = env.unwrapped
    episode = rollout(Replay((1 - share) * base.p0 + share * base.p_star, name=f"share {share:g}"), env, seed=seed)
    weights = np.asarray(base.scenario.weights())
    record = {
        "scenario": scenario, "preset": preset, "share": share, "seed": seed, "fields": list(episode.fields),
        "probes": list(base.probe_names), "start_feedback": episode.feedback[0].tolist(),
        "final_feedback": episode.final_feedback.tolist(), "return": episode.episode_return,
        "score": float(weights @ episode.final_feedback), "final_probes": episode.infos["probes"][-1].tolist(),
        "start_probes": episode.infos["probes"][0].tolist(), "steps": len(episode.rewards),
        "train_seconds": float(np.sum(episode.infos["train_seconds"][1:])),
        "eval_seconds": float(np.sum(episode.infos["eval_seconds"][1:])), "seconds": episode.seconds,
    }
    write_json(path, record)
    return record


def summarise(records: list[dict], score_of=None, score_name: str = "score (Σ λ f)") -> tuple[str, dict[str, dict[str, bool]]]:
    """A Markdown table per scenario (mean ± std over seeds) and the three checks of each scenario; `score_of(record)`
    scores an episode (default: the env's Σ λ f it logged)."""
    score_of = score_of or (lambda r: r["score"])
    lines, checks = [], {}
    for scenario in dict.fromkeys(r["scenario"] for r in records):
        mine = [r for r in records if r["scenario"] == scenario]
        fields, probes = mine[0]["fields"], mine[0]["probes"]
        shares = sorted({r["share"] for r in mine})
        stat = {}
        for s in shares:
            at = [r for r in mine if r["share"] == s]
            finals = np.array([r["final_feedback"] for r in at])
            stat[s] = {"n": len(at), "f": finals.mean(0), "f_std": finals.std(0), "score": np.mean([score_of(r) for r in at]),
                       "score_std": np.std([score_of(r) for r in at]), "probes": np.mean([r["final_probes"] for r in at], 0)}
        start = np.mean([r["start_feedback"] for r in mine], 0)
        lines += [f"**{scenario}** (start: " + ", ".join(f"f({f}) {v:.3f}" for f, v in zip(fields, start)) + ")", "",
                  "| s | n | " + " | ".join(f"f({f})" for f in fields) + f" | {score_name} | " + " | ".join(probes) + " |",
                  "| ---: " * (3 + len(fields) + len(probes)) + "|"]
        best = max(shares, key=lambda s: stat[s]["score"])
        for s in shares:
            st = stat[s]
            cells = [f"{m:.3f} ± {d:.3f}" for m, d in zip(st["f"], st["f_std"])]
            score = f"{st['score']:.3f} ± {st['score_std']:.3f}"
            lines.append(f"| {s:g} | {st['n']} | " + " | ".join(cells) + f" | {'**' + score + '**' if s == best else score} | "
                         + " | ".join(f"{p:.3f}" for p in st["probes"]) + " |")
        if 0.0 in stat and 1.0 in stat:
            lo, hi = stat[0.0], stat[1.0]
            seed_std = max(lo["f_std"][0], hi["f_std"][0], 1e-6)
            score_std = max(stat[best]["score_std"], hi["score_std"], 1e-6)
            checks[scenario] = {
                "forgetting": bool(lo["f"][0] - hi["f"][0] > 5 * seed_std),
                "interior_optimum": bool(0.0 < best < 1.0),
                "all_target_loses": bool(stat[best]["score"] - hi["score"] > 2 * score_std),
            }
            lines += ["", f"f(source) drop s=0 → 1: {lo['f'][0] - hi['f'][0]:.3f} (5 × seed std = {5 * seed_std:.3f}); "
                          f"best s = {best:g}; score(best) − score(1) = {stat[best]['score'] - hi['score']:.3f} "
                          f"(2 × seed std = {2 * score_std:.3f}); checks: "
                          + ", ".join(f"{k} {'✓' if v else '✗'}" for k, v in checks[scenario].items())]
        lines.append("")
    return "\n".join(lines), checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", nargs="+", default=DEFAULT_SCENARIOS)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--shares", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[SEED_BASE, SEED_BASE + 1, SEED_BASE + 2])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the per-episode JSON files")
    parser.add_argument("--protocol", help="score by this protocol's objective (e.g. dmix-bench-v2); static episodes do not "
                                           "depend on the reward, so stored ones are re-scored exactly, never re-run")
    args = parser.parse_args()

    from tqdm.auto import tqdm

    from dmix_gym.utils.pool import run_jobs

    folder = args.out / args.preset
    jobs, records = [], []
    for scenario in args.scenarios:
        for share in args.shares:
            for seed in args.seeds:
                path = folder / scenario / f"s{share:g}-seed{seed}.json"
                if path.exists():
                    records.append(json.loads(path.read_text()))
                else:
                    jobs.append((scenario, args.preset, share, seed, str(path)))
    for scenario in dict.fromkeys(job[0] for job in jobs):  # data and base checkpoint built once, before any worker
        _env(scenario, args.preset)
    started = time.perf_counter()
    for _, record in tqdm(run_jobs(run_point, jobs, args.workers), total=len(jobs), desc="sweep", unit="episode"):
        records.append(record)
    if jobs:
        print(f"{len(jobs)} episodes in {time.perf_counter() - started:.0f} s")
    records.sort(key=lambda r: (args.scenarios.index(r["scenario"]) if r["scenario"] in args.scenarios else 99,
                                r["share"], r["seed"]))
    score, name, summary = None, "score (Σ λ f)", "summary.md"
    if args.protocol:
        from leaderboard.protocol import get_protocol

        objective = get_protocol(args.protocol).objective
        score, name, summary = (lambda r: objective.score(r["final_feedback"])), f"{args.protocol} score", f"summary-{args.protocol}.md"
    table, checks = summarise([r for r in records if r["scenario"] in args.scenarios], score, name)
    print(table)
    (folder / summary).write_text(table)
    train = sum(r["train_seconds"] for r in records)
    evaluation = sum(r["eval_seconds"] for r in records)
    print(f"eval share of step time over these episodes: {evaluation / (train + evaluation):.3f}")
    if not all(all(c.values()) for c in checks.values()):
        raise SystemExit("some scenario misses a check (see the table)")


if __name__ == "__main__":
    main()
