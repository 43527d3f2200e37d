"""Where dmix-bench-v3 (#45) and the generalisation issue (#46) stand, from what is on disk: each task's reference, the
dataset's draws, the agents trained, the selection's episodes, the rows and the unseen-scale task. Reads only; what
`bash benchmarks/v3_cpu.sh status` prints under its lanes.

    python benchmarks/v3_progress.py
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from statistics import mean

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROTOCOL = "dmix-bench-v3"
RESULTS = ROOT / "benchmarks" / "results"
LIVE = RESULTS / "leaderboard" / "live"
COLLECTIONS = ROOT / "datasets_builder" / "collections"
AGENT_FOLDERS = ("agents-cpu-v3-relative", "agents-cpu-v3-response", "agents-cpu-v3-draws-relative",
                 "agents-cpu-v3-draws-response")
DRAWS, COSTLY = 50, 2.0  # benchmarks/dataset_v2.sh: the draws of train-v1, and the cost above which a draw gets half
ALGOS = {"sft": "sft.pt", "cql": "cql.pt", "iql": "iql.pt", "td3bc": "td3bc.pt", "bc": "bc.pt", "dt": "dt.json"}


def references() -> str:
    from leaderboard.protocol import get_protocol
    from leaderboard.store import Store

    protocol = get_protocol(PROTOCOL)
    db = LIVE / f"{PROTOCOL}.sqlite"
    store = Store(db if db.is_file() else RESULTS / "leaderboard" / f"{PROTOCOL}.sqlite")
    cells = []
    for task in protocol.tasks:
        log = LIVE / "references" / PROTOCOL / f"{task.name}.jsonl"
        episodes = sum(1 for _ in log.open()) if log.is_file() else 0
        ref = store.reference(protocol.version, task.name)
        cells.append(f"{task.name} {'done' if ref else 'searching'} ({episodes} episodes)")
    rows = store.submissions(protocol.version)
    done = sum(row["status"] == "done" for row in rows)
    return f"references: {'; '.join(cells)}\nrows: {done} done, {len(rows) - done} running or failed"


def horizon_used(folder: Path, max_steps: int) -> list[float]:
    """The share of the horizon each staged episode of a draw ran (an episode ends early when its target data runs out)."""
    from datasets_builder.collection import EPISODE_PATTERN, load_episode

    return [len(load_episode(path)["rewards"]) / max_steps for path in sorted(folder.glob(EPISODE_PATTERN))]


def dataset() -> str:
    from datasets_builder.collection import finished
    from dmix_gym.scenario_space import by_cost, draw_scenarios, load_space

    space = load_space("train-v1")
    complete = episodes = 0
    todo = []  # (cost, episodes left, data regime) of every draw
    used_by_regime = defaultdict(list)  # (target fraction, on exhausted) -> the horizon shares its staged episodes ran
    for draw, cost in by_cost(draw_scenarios(space, DRAWS), space):
        folder = COLLECTIONS / f"{draw['name']}-cpu-domain-space-v1"
        plan = folder / "plan.json"  # a started draw's own plan; benchmarks/dataset_v2.sh's rule for one not yet started
        planned = len(json.loads(plan.read_text())["episodes"]) if plan.is_file() else 10 if cost <= COSTLY else 5
        used = horizon_used(folder, draw["train"]["max_steps"])
        episodes += len(used)
        complete += len(used) >= planned
        regime = (draw["train"]["target_fraction"], draw["train"]["on_exhausted"])
        used_by_regime[regime] += used
        todo.append((cost, max(planned - len(used), 0), regime))
    full = sum(cost * left for cost, left, _ in todo)
    expected = sum(cost * left * (mean(used_by_regime[regime]) if used_by_regime[regime] else 1.0)
                   for cost, left, regime in todo)
    in_dist = len(finished(COLLECTIONS / "general-math-cpu-domain-space-v1"))
    return (f"dataset v2: in-distribution {in_dist} episodes; draws {complete} complete of {DRAWS} ({episodes} episodes "
            f"staged; about {expected:.0f} cpu episodes of training compute left, {full:.0f} at full horizon)")


def agents() -> str:
    cells = []
    for name in AGENT_FOLDERS:
        folder = ROOT / "runs" / name
        trained = [algo for algo, file in ALGOS.items() if (folder / file).is_file()]
        cells.append(f"{name.removeprefix('agents-cpu-v3-')} {len(trained)}/{len(ALGOS)}")
    selection = RESULTS / "model_selection" / f"{PROTOCOL}.json"
    scored = 0
    if selection.is_file():
        scored = sum(len(s["balanced"]) for s in json.loads(selection.read_text())["scores"].values())
    return f"agents trained: {', '.join(cells)}; selection: {scored} episodes scored"


def unseen_scale() -> str:
    folder = RESULTS / "unseen_scale" / PROTOCOL
    references = sum(1 for path in (folder / "references").glob("*.jsonl") for _ in path.open()) if folder.is_dir() else 0
    rows = sum(1 for _ in (folder / "rows.jsonl").open()) if (folder / "rows.jsonl").is_file() else 0
    return f"unseen-scale: {references} reference episodes, {rows} row episodes"


if __name__ == "__main__":
    print("\n".join((references(), dataset(), agents(), unseen_scale())))
