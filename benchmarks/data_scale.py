"""Does more logged data help the agent? Its score against the number of training episodes.

For each size n, a seeded subset of the dataset's episodes (the same share of every Algorithm 1 quality
level) trains SFT and then the offline RL algorithm model selection chose, for the number of steps it
chose (`benchmarks/results/model_selection/<protocol>.json`), into `<runs>/n<n>/`. Each agent then runs
the protocol's in-distribution task on its evaluation seeds; each finished episode is written atomically
to `<out>/<protocol>/n<n>-seed<seed>.json` (commit them: a re-run on any machine skips what is there).
The summary is a Markdown table and a plot of the normalised score against n, with the protocol's
official rows for the in-distribution task (RegMix, the best baseline) as horizontal lines.

This measures, it does not choose: no setting here is picked by these scores.

    python benchmarks/data_scale.py --sizes 16 32 64 128
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def subset_episodes(episode: np.ndarray, quality: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Ids of `n` episodes, each quality level represented in proportion to its share of the dataset."""
    ids = np.unique(episode)
    level = np.array([quality[episode == i][0] for i in ids])
    if not 0 < n <= len(ids):
        raise ValueError(f"subset size {n} must lie in 1..{len(ids)} (the dataset's episodes)")
    rng = np.random.default_rng(seed)
    chosen = []
    levels = sorted(set(level.tolist()))
    quotas = {q: int(np.floor(n * np.mean(level == q))) for q in levels}
    for q in sorted(levels, key=lambda q: -np.mean(level == q))[: n - sum(quotas.values())]:
        quotas[q] += 1  # the remainder goes to the largest levels
    for q in levels:
        chosen += rng.permutation(ids[level == q])[: quotas[q]].tolist()
    return np.sort(np.array(chosen))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocol", default="dmix-bench-v2")
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--runs", type=Path, default=Path("runs/data-scale"))
    parser.add_argument("--out", type=Path, default=RESULTS / "data_scale")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="subset and training seed")
    args = parser.parse_args()

    from agents.agent import TransformerAgent
    from agents.offline_data import dataset_ids, load_offline
    from agents.offline_rl import RLSettings, train_rl
    from agents.sft import SFTConfig, train_sft
    from dmix_gym.utils.atomic import write_json
    from leaderboard.episodes import run_episodes
    from leaderboard.official import official_agent, ranking_objective
    from leaderboard.protocol import get_protocol
    from leaderboard.selection import ranked_algorithms

    protocol = get_protocol(args.protocol)
    selection = json.loads((RESULTS / "model_selection" / f"{args.protocol}.json").read_text())
    algo = ranked_algorithms(selection["chosen"], leave_out=("sft", "dt"))[0]  # the best offline RL algorithm
    steps = int(selection["chosen"][algo]["label"].split("@")[1])
    shipped = TransformerAgent.load(official_agent(f"{args.protocol}/{algo}"))
    reward = shipped.meta.get("reward", "env")  # an agent trained before the reward setting learnt eq. 6
    config = shipped.config  # the same shape and feedback features as the shipped agent
    datasets = dataset_ids(shipped.meta.get("dataset", protocol.dataset))  # what the shipped agent trained on
    data = load_offline(datasets, config.window, config.features, config.target_left)
    task = protocol.tasks[0]
    folder = args.out / args.protocol
    stats = ranking_objective(protocol)
    for n in args.sizes:
        pending = [seed for seed in task.seeds if not (folder / f"n{n}-seed{seed}.json").exists()]
        if not pending:
            continue
        runs = args.runs / f"n{n}"
        subset = data.select(np.isin(data.episode, subset_episodes(data.episode, data.quality, n, args.seed)))
        if not (runs / f"{algo}.pt").exists():
            if not (runs / "sft.pt").exists():
                train_sft(subset, runs, config, SFTConfig(seed=args.seed), progress=False)
            train_rl(subset, runs, TransformerAgent.load(runs / "sft.pt"), RLSettings(algo, steps=steps, seed=args.seed, reward=reward),
                     progress=False)
        meta = TransformerAgent.load(runs / f"{algo}.pt").meta
        jobs = [(str(runs / f"{algo}.pt"), task, seed) for seed in pending]
        for index, record in run_episodes(jobs, stats, {}, args.workers):
            write_json(folder / f"n{n}-seed{pending[index]}.json",
                       {"n": n, "algo": algo, "steps": steps, "seed": pending[index], "train_seconds": meta["train_seconds"],
                        "episodes": int(len(np.unique(subset.episode))), **{k: record[k] for k in ("balanced", "episode_return",
                                                                                                   "final_feedback")}})
            print(f"n={n} seed={pending[index]}: balanced {record['balanced']:+.3f}", flush=True)
    summarise(folder, protocol, args.sizes, algo)


def summarise(folder: Path, protocol, sizes: list[int], algo: str) -> None:
    """Markdown table and plot of the normalised in-distribution score against the number of episodes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from leaderboard.official import load_official
    from leaderboard.scores import mean_std, normalised_score

    task = protocol.tasks[0].name
    official = load_official(protocol.version)
    if official is None:
        raise SystemExit(f"no official results of {protocol.version} yet: the scores normalise with its references")
    ref = official["references"][task]
    norm = lambda b: normalised_score(b, ref["ref_min"], ref["ref_max"])  # noqa: E731
    rows = []
    for n in sizes:
        found = [json.loads(p.read_text()) for p in sorted(folder.glob(f"n{n}-seed*.json"))]
        if found:
            rows.append((n, *mean_std([norm(r["balanced"]) for r in found]), len(found)))
    lines = [f"| episodes | {algo.upper()} agent, {task} score | seeds |", "| ---: | ---: | ---: |"]
    lines += [f"| {n} | {m:.1f} ± {s:.1f} | {k} |" for n, m, s, k in rows]
    baselines = {s["name"]: mean_std([norm(e["balanced"]) for e in s["episodes"] if e["task"] == task])[0]
                 for s in official["submissions"] if s["policy"].startswith("baseline:")}
    lines += [f"| {name} | {score:.1f} | |" for name, score in sorted(baselines.items(), key=lambda kv: -kv[1])[:3]]
    (folder / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if rows:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.errorbar([r[0] for r in rows], [r[1] for r in rows], yerr=[r[2] for r in rows], marker="o", capsize=3,
                    label=f"{algo.upper()} agent", color="C0")
        for colour, (name, score) in zip(("C1", "C2", "C3"), sorted(baselines.items(), key=lambda kv: -kv[1])[:3]):
            ax.axhline(score, linestyle="--", linewidth=1, label=name, color=colour)
        ax.set(xscale="log", xlabel="training episodes", ylabel=f"normalised score ({task})",
               title=f"data scale: {protocol.version}")
        ax.set_xticks([r[0] for r in rows], [str(r[0]) for r in rows])
        ax.minorticks_off()
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(folder / "data_scale.png", dpi=120)


if __name__ == "__main__":
    main()
