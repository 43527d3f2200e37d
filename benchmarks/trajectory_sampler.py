"""Speed and quality of Algorithm 1's trajectory sampler at the paper's size.

    python benchmarks/trajectory_sampler.py                       # 100 trajectories x 80 steps x 52 domains
    python benchmarks/trajectory_sampler.py --trajectories 20 --levels 1 100

Per quality level N: seconds to sample, mean JS between consecutive steps (smoothness), mean
JS of the last step to p* (target seeking), and mean JS to the nearest other trajectory at
the same step (diversity).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from datasets_builder.trajectories import QUALITY_LEVELS, js_divergence, sample_trajectories


def nearest_other(trajectories: np.ndarray) -> float:
    """Mean over trajectories and steps of the JS to the nearest other trajectory at that step."""
    return float(np.mean([js_divergence(trajectories[i][None], np.delete(trajectories, i, 0)).min(0).mean()
                          for i in range(len(trajectories))]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domains", type=int, default=52, help="D, split evenly between a source and a target field")
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--trajectories", type=int, default=100)
    parser.add_argument("--levels", type=int, nargs="+", default=list(QUALITY_LEVELS))
    parser.add_argument("--out", default=None, help="write the rows as JSON here")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    half = args.domains // 2
    p0 = np.concatenate([rng.dirichlet(np.ones(half)), np.zeros(args.domains - half)])
    p_star = np.concatenate([np.zeros(half), rng.dirichlet(np.ones(args.domains - half))])
    rows = []
    print("N | seconds | step JS | last-step JS to p* | JS to nearest other")
    for n in args.levels:
        started = time.perf_counter()
        trajectories = sample_trajectories(p0, p_star, args.steps, args.trajectories, n, seed=0)
        row = {
            "n": n, "seconds": round(time.perf_counter() - started, 2),
            "step_js": round(float(js_divergence(trajectories[:, 1:], trajectories[:, :-1]).mean()), 4),
            "last_js_to_target": round(float(js_divergence(trajectories[:, -1], p_star).mean()), 4),
            "nearest_other_js": round(nearest_other(trajectories), 4),
        }
        rows.append(row)
        print(" | ".join(str(v) for v in row.values()), flush=True)
    if args.out:
        with open(args.out, "w") as handle:
            json.dump({"args": vars(args), "rows": rows}, handle, indent=1)


if __name__ == "__main__":
    main()
