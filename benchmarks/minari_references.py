"""The reference returns Minari normalises a dataset's scores with, measured, stored beside the collection.

`ref_min_score`: the mean return of the collection's quality-1 episodes (Algorithm 1 with one candidate:
random mixtures from the trajectory sampler, the env's own notion of a random policy).
`ref_max_score`: the best static target share's mean return in the mixture sweep of the same scenario and
preset (`benchmarks/mixture_sweep.py`), the same definition as the leaderboard's ref_max, in return units.
Nothing is run: both come from committed episodes. `dmix publish` then sets them on the Minari dataset,
so `minari.get_normalized_score(dataset, returns)` works.

    python benchmarks/minari_references.py --scenario general-math --preset cpu
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from datasets_builder.collection import SHIPPED, Plan
from datasets_builder.publish import staged_episodes, write_references
from dmix_gym.errors import ConfigError
from dmix_gym.scenario import Scenario, resolve_scenario

SWEEP = Path(__file__).resolve().parent / "results" / "mixture_sweep"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="general-math")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--collection", type=Path, help="collection folder (default: the shipped <scenario>-<preset>-trajectories-v1)")
    args = parser.parse_args()
    folder = args.collection or SHIPPED / f"{args.scenario}-{args.preset}-trajectories-v1"
    plan = Plan.from_json(json.loads((folder / "plan.json").read_text()))
    episodes = staged_episodes(folder)
    if len(episodes) < len(plan.episodes):
        raise ConfigError(f"{folder} holds {len(episodes)} of {len(plan.episodes)} planned episodes: finish the collection first")
    random = [float(e["rewards"].sum()) for e in episodes if int(e["quality"]) == 1]
    if not random:
        raise ConfigError(f"{folder} has no quality-1 (random) episodes")

    collected = Scenario.from_dict(plan.scenario)
    by_share: dict[float, list[float]] = defaultdict(list)
    for path in sorted((SWEEP / args.preset / args.scenario).glob("s*-seed*.json")):
        run = json.loads(path.read_text())
        if resolve_scenario(run["scenario"], run["preset"]) != collected:
            raise ConfigError(f"{path} swept {run['scenario']}/{run['preset']}, another scenario than {folder}'s plan")
        by_share[run["share"]].append(run["return"])
    if not by_share:
        raise ConfigError(f"no mixture sweep of {args.scenario} at {args.preset}: run benchmarks/mixture_sweep.py first")
    means = {share: float(np.mean(returns)) for share, returns in by_share.items()}
    best = max(means, key=means.get)
    path = write_references(folder, float(np.mean(random)), means[best], len(random), {
        "ref_min_score": f"mean return of the collection's {len(random)} quality-1 (random-mixture) episodes",
        "ref_max_score": f"mean return of the best static target share s = {best:g} over {len(by_share[best])} sweep seeds "
                         f"(benchmarks/results/mixture_sweep/{args.preset}/{args.scenario})",
    })
    print(f"ref_min_score {np.mean(random):+.4f}  ref_max_score {means[best]:+.4f} (s = {best:g}) -> {path}")


if __name__ == "__main__":
    main()
