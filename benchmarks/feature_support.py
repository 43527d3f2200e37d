"""Which feedback features survive another model's dynamics? Measured on committed episodes, before any agent trains.

An agent reads the feedback through its state features (`agents.features`). Where the dynamics change (another proxy
shape, a corpus, a 10x model), a feature that moves with them tells the agent it is somewhere its data never was,
and it acts on that (dmix-bench-v2's IQL agent at 10x, issue #46). This script scores candidate features on the
static policies every setting ran (their mixtures do not depend on the state, so every difference between settings is
the dynamics):

- **outside**: the share of (state, field) features outside the training dataset's 1st-99th percentile at that step;
- **identified**: how often the policy that produced a trajectory is the nearest, in mean feature distance over its
  steps, among the same policies' in-distribution trajectories (chance is 1 / policies). A feature that keeps
  telling mixtures apart under the other dynamics keeps the agent's state meaningful; a constant would score chance.

Settings: dmix-bench-v2's `unseen-model`, `unseen-source` and `scarce-target` episodes (official file), and the 10x
runs of `benchmarks/cpt_scale.py`, against the v2 rows' `in-distribution` episodes. No env step runs.

    python benchmarks/feature_support.py        # writes benchmarks/results/feature_support/{result.json,table.md}
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OFFICIAL = ROOT / "leaderboard" / "official" / "dmix-bench-v2.json"
CPT_RUNS = ROOT / "benchmarks" / "results" / "cpt_scale"
OUT = ROOT / "benchmarks" / "results" / "feature_support"
DATASET = "dmix/general-math-cpu/trajectories-v1"
POLICIES = {"Static-transfer": "static-transfer", "Uniform": "uniform", "Mixing laws": "mixing-laws", "Natural": None,
            "Start-state": None, "Naive": None, "RegMix": None}  # row -> its 10x runs' name (None: not run at 10x)
SETTINGS = ("unseen-model", "unseen-source", "scarce-target", "llama-10x")
QUANTILES = (1.0, 99.0)


def first_move(f: np.ndarray) -> np.ndarray:
    """|f_1 - f_0| per field: how far the episode's first step moved each field (the dynamics' own scale)."""
    return np.maximum(np.abs(f[1] - f[0]), 1e-6)


def candidate_features(mean: np.ndarray, std: np.ndarray) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Each candidate: (T + 1, K) feedback of an episode -> (T + 1, K) features (row 0 at reset)."""
    def increment(f: np.ndarray) -> np.ndarray:
        return np.concatenate([np.zeros_like(f[:1]), np.diff(f, axis=0)])

    return {
        "absolute (f - mean) / std": lambda f: (f - mean) / std,
        "relative (f - f0) / std": lambda f: (f - f[0]) / std,
        "response (f - f0) / |f1 - f0|": lambda f: (f - f[0]) / first_move(f),
        "increment (f_t - f_t-1) / std": lambda f: increment(f) / std,
        "increment / |f1 - f0|": lambda f: increment(f) / first_move(f),
    }


def dataset_feedback() -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Every training episode's (T + 1, K) feedback and the dataset's per-field mean and std."""
    from datasets_builder.publish import dmix_metadata, load_dmix_dataset

    data = load_dmix_dataset(DATASET)
    meta = dmix_metadata(data)
    d, k = len(meta["domains"]), len(meta["fields"])
    episodes = [np.asarray(e.observations[:, d:d + k], np.float64) for e in data.iterate_episodes()]
    return episodes, np.asarray(meta["feedback_mean"]), np.asarray(meta["feedback_std"])


def official_feedback() -> dict[str, dict[str, list[np.ndarray]]]:
    """{setting: {row: [(T + 1, K) feedback per seed]}} of the static rows in dmix-bench-v2's official file."""
    rows = {r["name"]: r for r in json.loads(OFFICIAL.read_text())["submissions"] if r["name"] in POLICIES}
    found: dict[str, dict[str, list[np.ndarray]]] = {}
    for name, row in rows.items():
        for episode in sorted(row["episodes"], key=lambda e: e["seed"]):
            found.setdefault(episode["task"], {}).setdefault(name, []).append(np.asarray(episode["trace"]["feedback"]))
    return found


def cpt_feedback() -> dict[str, list[np.ndarray]]:
    """{row: [(T + 1, K) feedback per seed]} of the 10x runs (the start from start-llama-10x.json)."""
    start = json.loads((CPT_RUNS / "start-llama-10x.json").read_text())["feedback"]
    found: dict[str, list[np.ndarray]] = {}
    for row, runs in POLICIES.items():
        for path in sorted(CPT_RUNS.glob(f"{runs}-s*.jsonl")) if runs else []:
            records = [json.loads(line) for line in path.read_text().splitlines()]
            found.setdefault(row, []).append(np.asarray([start] + [r["feedback"] for r in records]))
    return found


def support(episodes: list[np.ndarray], feature) -> tuple[np.ndarray, np.ndarray]:
    """(T + 1, K) low and high percentiles of a feature over the training episodes, by step."""
    values = [feature(f) for f in episodes]
    steps = max(len(v) for v in values)
    by_step = [np.stack([v[t] for v in values if len(v) > t]) for t in range(steps)]
    return (np.stack([np.percentile(x, QUANTILES[0], axis=0) for x in by_step]),
            np.stack([np.percentile(x, QUANTILES[1], axis=0) for x in by_step]))


def outside_share(trajectories: list[np.ndarray], low: np.ndarray, high: np.ndarray) -> float:
    """The share of (step >= 1, field) features outside the support."""
    flags = []
    for x in trajectories:
        t = np.minimum(np.arange(1, len(x)), len(low) - 1)
        flags.append((x[1:] < low[t]) | (x[1:] > high[t]))
    return float(np.mean(np.concatenate(flags)))


def identified(reference: dict[str, np.ndarray], shifted: dict[str, list[np.ndarray]], scale: np.ndarray) -> float:
    """How often a shifted trajectory's nearest in-distribution mean trajectory (same steps, features in units of the
    training spread `scale` per step and field) is its own policy's."""
    hits = []
    for name, trajectories in shifted.items():
        for x in trajectories:
            steps = min(len(x), *(len(r) for r in reference.values()))
            distance = {other: float(np.mean(np.abs(x[1:steps] - r[1:steps]) / scale[1:steps])) for other, r in reference.items()}
            hits.append(min(distance, key=distance.get) == name)
    return float(np.mean(hits))


def main() -> None:
    from dmix_gym.utils.atomic import write_json

    train, mean, std = dataset_feedback()
    official = official_feedback()
    settings = {name: official[name] for name in SETTINGS if name in official}
    settings["llama-10x"] = cpt_feedback()
    result: dict[str, dict[str, dict[str, float]]] = {}
    for label, feature in candidate_features(mean, std).items():
        low, high = support(train, feature)
        scale = np.maximum(high - low, 1e-6)
        reference = {name: np.mean([feature(f) for f in runs], axis=0) for name, runs in official["in-distribution"].items()}
        result[label] = {"in-distribution": {"outside": outside_share([feature(f) for r in official["in-distribution"].values()
                                                                       for f in r], low, high)}}
        for setting, rows in settings.items():
            shifted = {name: [feature(f) for f in runs] for name, runs in rows.items() if name in reference}
            result[label][setting] = {"outside": outside_share([x for v in shifted.values() for x in v], low, high),
                                      "identified": identified(reference, shifted, scale),
                                      "policies": len(shifted), "trajectories": sum(len(v) for v in shifted.values())}
    columns = ["in-distribution", *settings]
    lines = ["| feature | " + " | ".join(columns) + " |", "| --- |" + " ---: |" * len(columns)]
    for label, rows in result.items():
        cells = [f"{rows[c]['outside']:.0%} out" + (f", {rows[c]['identified']:.0%} id" if "identified" in rows[c] else "")
                 for c in columns]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    chance = {s: f"1/{result[next(iter(result))][s]['policies']}" for s in settings}
    lines.append("")
    lines.append("out: share of (step, field) features outside the training data's 1st-99th percentile at that step; "
                 "id: share of trajectories whose nearest in-distribution policy (mean feature distance) is their own "
                 f"(chance {', '.join(f'{s} {c}' for s, c in chance.items())}).")
    OUT.mkdir(parents=True, exist_ok=True)
    write_json(OUT / "result.json", {"dataset": DATASET, "quantiles": QUANTILES, "policies": list(POLICIES), "result": result})
    (OUT / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
