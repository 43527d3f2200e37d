"""How well the base model's own samples estimate the start state p_0 (paper App. B), and at what cost.

For each sample count N and seed, `dmix_gym.start_state.estimate_start` samples N texts from the base
checkpoint and classifies them into source domains; the KL(true p_0 || estimate) and the seconds are
written to `<out>/<preset>/<scenario>/n<N>-seed<seed>.json` as each finishes (a re-run skips them).
Then one policy that holds its start mixture (the first observation's p_0, whichever the env started
from) runs one episode from the true and one from the estimated start (the largest N); the summary
prints a table and writes a plot.

    python benchmarks/start_state.py --preset cpu
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from dmix_gym.policy import History, Policy

RESULTS = Path(__file__).resolve().parent / "results" / "start_state"
EPISODE_SEED = 3_000_000  # away from collection, leaderboard and sweep seeds


class HoldStart(Policy):
    """Holds the start mixture p_0 the env's first observation shows (the corpus's or the estimated one)."""

    name = "hold-start"

    def act(self, history: History) -> np.ndarray:
        p = np.asarray(history.observations[0][: self.info.num_domains], np.float64)
        return p / p.sum()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="general-math")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--samples", type=int, nargs="+", default=[16, 64, 256, 1024, 4096])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    import gymnasium as gym

    import dmix_gym  # noqa: F401  (registers DataMix-v0)
    from dmix_gym.policy import rollout
    from dmix_gym.start_state import estimate_path, estimate_start
    from dmix_gym.utils.atomic import write_json

    folder = args.out / args.preset / args.scenario
    env = gym.make("DataMix-v0", scenario=args.scenario, preset=args.preset, progress=True)
    base = env.unwrapped
    base.backend.model.load_state_dict(base.backend.start_state)
    for n in args.samples:
        for seed in args.seeds:
            path = folder / f"n{n}-seed{seed}.json"
            if not path.exists():
                result = estimate_start(base.backend.model, base.shards, n, seed)
                write_json(path, result)
                print(f"N={n} seed={seed}: KL {result['kl']:.4f} nats, {result['seconds']:.1f} s", flush=True)

    returns_path = folder / "returns.json"
    if not returns_path.exists():
        largest = max(args.samples)
        estimated = json.loads(estimate_path(base.shards, largest, args.seeds[0]).read_text())["p0"]
        returns = {}
        for start, p0 in (("corpus", base.domain_space.p0), ("estimated", estimated)):
            run_env = gym.make("DataMix-v0", scenario=args.scenario, preset=args.preset, progress=False, start=start,
                               start_samples=largest)
            episode = rollout(HoldStart(), run_env, seed=EPISODE_SEED)
            returns[start] = {"return": float(episode.rewards.sum()), "final_feedback": episode.feedback[-1].tolist(),
                              "p0_l1": float(np.abs(np.asarray(p0) - np.asarray(base.domain_space.p0)).sum())}
        write_json(returns_path, {"samples": largest, **returns})
    summarise(folder, args.samples, args.seeds)


def summarise(folder: Path, samples: list[int], seeds: list[int]) -> None:
    """Markdown table (N, KL mean ± std, seconds) and a log-log plot of KL against N."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    for n in samples:
        found = [json.loads((folder / f"n{n}-seed{s}.json").read_text()) for s in seeds if (folder / f"n{n}-seed{s}.json").exists()]
        if found:
            kl = np.array([r["kl"] for r in found])
            rows.append((n, kl.mean(), kl.std(), np.mean([r["seconds"] for r in found]), len(found)))
    lines = ["| N samples | KL(p0 ‖ estimate), nats | seconds | seeds |", "| ---: | ---: | ---: | ---: |"]
    lines += [f"| {n} | {m:.4f} ± {s:.4f} | {sec:.1f} | {k} |" for n, m, s, sec, k in rows]
    if (folder / "returns.json").exists():
        returns = json.loads((folder / "returns.json").read_text())
        lines += ["", f"A policy holding its start mixture, one episode: return {returns['corpus']['return']:+.3f} from the corpus's "
                      f"p0, {returns['estimated']['return']:+.3f} from the estimate of N = {returns['samples']} "
                      f"(L1 distance between the two p0: {returns['estimated']['p0_l1']:.3f})."]
    (folder / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if rows:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.errorbar([r[0] for r in rows], [r[1] for r in rows], yerr=[r[2] for r in rows], marker="o", capsize=3)
        ax.set(xscale="log", yscale="log", xlabel="samples from the base model", ylabel="KL(p0 ‖ estimate), nats",
               title=f"start-state estimate: {folder.parent.name} / {folder.name}")
        fig.tight_layout()
        fig.savefig(folder / "kl.png", dpi=120)


if __name__ == "__main__":
    main()
