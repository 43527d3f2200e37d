"""When would the support guard have handed the v2 agent's episodes to its fallback? Measured on committed episodes.

`agents.support` guards an agent with its training data's support: from the first state outside it, or from a first
step that moved the feedback unlike the data's first steps for that mixture, the data's best episodes' mean mixture.
This replays the states of every committed episode of dmix-bench-v2's shipped IQL agent (its official rows on the
tasks that share the training domain space, and its 10x runs of `benchmarks/cpt_scale.py`) through the guard fitted
on the agent's own training data, and reports, per setting, how many episodes it would have stopped, at which step,
and what the agent was playing by then. No env step runs: what the fallback would have
scored is for the leaderboard to measure.

    python benchmarks/support_guard.py      # writes benchmarks/results/support_guard/{result.json,table.md}
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OFFICIAL = ROOT / "leaderboard" / "official" / "dmix-bench-v2.json"
AGENT = ROOT / "leaderboard" / "official" / "agents" / "dmix-bench-v2" / "iql.pt"
DATASETS = ["dmix/general-math-cpu/trajectories-v1", "dmix/general-math-cpu/scarce-target-v1"]  # what it trained on
CPT_RUNS = ROOT / "benchmarks" / "results" / "cpt_scale"
OUT = ROOT / "benchmarks" / "results" / "support_guard"
TASKS = ("in-distribution", "unseen-model", "scarce-target")  # the training domain space: states comparable as logged


def observations(mixtures: np.ndarray, feedback: np.ndarray, horizon: int) -> np.ndarray:
    """(T + 1, D + K + 2) observations as the env gives them (the data-left tail, which traces lack, at 1; the
    support does not read it)."""
    steps = np.arange(len(mixtures))[:, None] / horizon
    return np.concatenate([mixtures, feedback, steps, np.ones_like(steps)], axis=1)


def official_episodes() -> dict[str, list[np.ndarray]]:
    """{task: [(T + 1, obs) per episode]} of the IQL agent's official v2 rows."""
    row = next(s for s in json.loads(OFFICIAL.read_text())["submissions"] if s["name"] == "IQL agent")
    found: dict[str, list[np.ndarray]] = {}
    for e in row["episodes"]:
        if e["task"] in TASKS:
            trace = e["trace"]
            found.setdefault(e["task"], []).append(observations(np.asarray(trace["mixtures"]),
                                                                np.asarray(trace["feedback"]), 20))
    return found


def cpt_episodes(p0: np.ndarray) -> list[np.ndarray]:
    """[(T + 1, obs) per seed] of the IQL agent's 10x runs (start feedback from start-llama-10x.json)."""
    start = json.loads((CPT_RUNS / "start-llama-10x.json").read_text())["feedback"]
    runs = []
    for path in sorted(CPT_RUNS.glob("iql-s*.jsonl")):
        records = [json.loads(line) for line in path.read_text().splitlines()]
        mixtures = np.asarray([p0] + [r["policy_mixture"] for r in records])
        feedback = np.asarray([start] + [r["feedback"] for r in records])
        runs.append(observations(mixtures, feedback, len(records)))
    return runs


def main() -> None:
    from agents.agent import TransformerAgent
    from agents.offline_data import load_offline
    from agents.support import SupportGuard, fit_support

    agent = TransformerAgent.load(AGENT)
    data = load_offline(DATASETS, agent.config.window, agent.config.features, agent.config.target_left)
    support = fit_support(data)
    guard = SupportGuard(agent, support)
    source = np.asarray(agent.domain_space.field_of) == 0
    settings = {**official_episodes(), "llama-10x": cpt_episodes(np.asarray(agent.domain_space.p0))}
    result = {"agent": str(AGENT.relative_to(ROOT)), "datasets": DATASETS, "radius": support.radius,
              "fallback_target_share": float(1 - support.fallback[source].sum()), "settings": {}}
    rows = ["| setting | episodes | stopped | first step outside (median) | agent's target share there | "
            "agent's final target share |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, episodes in settings.items():
        fired, shares, finals = [], [], []
        for obs in episodes:
            vouched = [guard.vouched(obs[:t + 1]) for t in range(len(obs))]
            first = vouched.index(False) if False in vouched else None
            fired.append(first)
            finals.append(float(1 - obs[-1, :source.size][source].sum()))
            if first is not None:
                shares.append(float(1 - obs[first, :source.size][source].sum()))
        stopped = [f for f in fired if f is not None]
        result["settings"][name] = {"episodes": len(episodes), "first_outside": fired, "share_there": shares,
                                    "final_share": finals}
        rows.append(f"| {name} | {len(episodes)} | {len(stopped)} | {np.median(stopped) if stopped else '–'} | "
                    f"{np.mean(shares):.2f} | {np.mean(finals):.2f} |" if stopped else
                    f"| {name} | {len(episodes)} | 0 | – | – | {np.mean(finals):.2f} |")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    note = (f"\nGuard fitted on {' + '.join(DATASETS)} ({len(support.tokens)} states, radius {support.radius:.2f}); "
            f"fallback: the top 10% of episodes' mean mixture, target share {result['fallback_target_share']:.3f}. "
            f"First-move radius {support.first_move_radius:.2f} (scaled residual). Step t's state is the one after t steps "
            "(0: reset); a stopped episode plays the fallback from there on.\n")
    (OUT / "table.md").write_text("\n".join(rows) + "\n" + note)
    print("\n".join(rows) + "\n" + note)


if __name__ == "__main__":
    main()
