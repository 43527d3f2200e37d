"""Feedback after a fixed-share episode, for several target shares: the trade-off the benchmark exists for.

Reproduces DESIGN.md's reference table: target feedback should rise with the target share,
source feedback fall (forgetting), and the equal-weight sum peak inside (0, 1).

    python benchmarks/mixture_sweep.py --preset cpu --steps 10 --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym
import numpy as np

import dmix_gym  # noqa: F401  (registers DataMix-v0)


def fixed_share_mixture(env, share: float) -> np.ndarray:
    """Target share spread like p*, the rest like p0."""
    base = env.unwrapped
    return (1 - share) * base.p0 + share * base.p_star


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="general-math")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--steps", type=int, default=10, help="re-weighting steps per run")
    parser.add_argument("--shares", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=None, help="write the rows as JSON here")
    args = parser.parse_args()

    env = gym.make("DataMix-v0", scenario=args.scenario, preset=args.preset, device=args.device)
    fields = env.unwrapped.domain_space.fields
    rows = []
    print(f"{'share':>6} " + " ".join(f"{f:>10}" for f in fields) + f" {'sum':>8} {'sec':>6}")
    for share in args.shares:
        finals = []
        started = time.perf_counter()
        for seed in args.seeds:
            _, info = env.reset(seed=seed)
            for _ in range(args.steps):
                _, _, terminated, truncated, info = env.step(fixed_share_mixture(env, share))
                if terminated or truncated:
                    break
            finals.append(info["feedback"])
        mean, std = np.mean(finals, 0), np.std(finals, 0)
        start = env.unwrapped._base_eval[0].tolist() if env.unwrapped._base_eval else None
        rows.append({"share": share, "feedback": mean.tolist(), "std": std.tolist(), "start": start})
        print(f"{share:6.2f} " + " ".join(f"{m:7.3f}±{s:.2f}" for m, s in zip(mean, std))
              + f" {mean.sum():8.3f} {time.perf_counter() - started:6.1f}")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump({"args": vars(args), "fields": list(fields), "rows": rows}, handle, indent=1)


if __name__ == "__main__":
    main()
