"""Dataset v2's behaviour levels against the benchmark's ceiling: does the data's support hold the optimum?

Reads a collection's staged episodes (`datasets_builder/collections/<name>/`, so a collection still running reports
what it has) and scores every episode's final feedback by a protocol's objective, the score its references use. Per
behaviour level (the quality labels of `datasets_builder.behaviours` and Algorithm 1's N): episodes, mean and best
balanced score, the best against the training task's `ref_max` (for a collection of that task's scenario), and the
GSM8K probe the score does not reward.

    python benchmarks/dataset_report.py [--collection general-math-cpu-domain-space-v1] [--protocol dmix-bench-v3]
    python benchmarks/dataset_report.py --space train-v1      # one row per staged draw of a scenario space

`--space` summarises the draws instead (`<space>.md`): what each draw varies (proxy, learning rate and schedule, target
data and what happens when it runs out, horizon, source and target composition), its episodes, and how far apart its
best and worst episodes score. Scores of different draws do not compare (other dynamics), but a draw whose episodes
all score alike teaches an agent little about mixtures.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COLLECTIONS = ROOT / "datasets_builder" / "collections"
SNAPSHOTS = ROOT / "benchmarks" / "results" / "leaderboard"
OUT = ROOT / "benchmarks" / "results" / "dataset_report"


def level(quality: int) -> str:
    """A quality label's behaviour level, in words."""
    from datasets_builder.behaviours import DIRICHLET_BASE, NEAR_BASE, TILTED_QUALITY

    if quality == TILTED_QUALITY:
        return "tilted"
    if NEAR_BASE - 100 < quality <= NEAR_BASE:
        return f"near copies of searched mixture {NEAR_BASE - quality}"
    if DIRICHLET_BASE - 100 < quality <= DIRICHLET_BASE:
        return f"dirichlet-{(DIRICHLET_BASE - quality) / 10:g}"
    return f"Algorithm 1, N = {quality}"


def scored_episodes(folder: Path, protocol) -> list[tuple[str, float, np.ndarray]]:
    """(behaviour level, score by the protocol's objective, final probes) of every staged episode of a collection."""
    from datasets_builder.collection import EPISODE_PATTERN, load_episode

    found = []
    for path in sorted(folder.glob(EPISODE_PATTERN)):
        episode = load_episode(path)
        score = protocol.objective.score(episode["info/feedback"][-1])
        found.append((level(int(episode["quality"])), score, np.asarray(episode["info/probes"][-1])))
    return found


def file_names(files: list[str]) -> str:
    """Data files by their stem, joined: `dbpedia14+wikitext103_articles`."""
    return "+".join(Path(f).name.split(".")[0] for f in files)


def draw_row(folder: Path, protocol, base_flops: float) -> str:
    """A staged draw's row: its settings, its episodes and the spread of their scores."""
    from dmix_gym.scenario import Scenario
    from dmix_gym.scenario_space import episode_flops

    plan = json.loads((folder / "plan.json").read_text())
    scenario = plan["scenario"]
    model, train = scenario["model"], scenario["train"]
    fields = {f["role"]: f for f in scenario["data"]["fields"]}
    source, target = fields["source"]["train"], fields["target"]["train"]
    cost = episode_flops(Scenario.from_dict(scenario)) / base_flops
    found = scored_episodes(folder, protocol)
    scores = [score for _, score, _ in found]
    spread = "– | – | – | –"
    if found:
        best = int(np.argmax(scores))
        spread = f"{min(scores):.2f} | {scores[best]:.2f} | {scores[best] - min(scores):.2f} | {found[best][0]}"
    return (f"| {scenario['data']['name'].rsplit('-', 1)[-1]} | {model['hidden_size']}x{model['num_layers']} | {cost:.2f} | "
            f"{train['lr']:.4f} {train['lr_schedule']} | {train['target_fraction']:g}, {train['on_exhausted']} | "
            f"{train['max_steps']} x {train['tokens_per_step'] // 1024}k | {file_names(source['files'])} "
            f"({len(source.get('labels') or [])} labels) | {file_names(target['files'])} | "
            f"{file_names(fields['target']['eval']['files'])} | {len(scores)}/{len(plan['episodes'])} | {spread} |")


def space_report(space_name: str, protocol) -> str:
    """Every staged draw of a scenario space, a row each (`draw_row`), with the totals."""
    from datasets_builder.collection import finished
    from dmix_gym.scenario import make_scenario
    from dmix_gym.scenario_space import episode_flops, load_space

    space = load_space(space_name)
    base_flops = episode_flops(make_scenario(space.base, space.preset))
    folders = sorted(f for f in COLLECTIONS.glob(f"{space.name}-*") if (f / "plan.json").is_file())
    rows = [draw_row(folder, protocol, base_flops) for folder in folders]
    episodes = sum(len(finished(f)) for f in folders)
    header = ["| draw | proxy (hidden x layers) | cost (x cpu episode) | peak lr, schedule | target fraction, when out | "
              "steps x tokens | source (labels kept) | target | target feedback | episodes | worst | best | "
              "best − worst | best level |", "| --- | --- | ---: | --- | --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | --- |"]
    return "\n".join(header + rows) + (f"\n\n{len(folders)} draws of {space.name} staged, {episodes} episodes, scored by "
                                        f"{protocol.version}'s objective (scores compare within a draw only).\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collection", default="general-math-cpu-domain-space-v1")
    parser.add_argument("--protocol", default="dmix-bench-v3")
    parser.add_argument("--space", help="summarise the staged draws of this scenario space instead, a row each")
    args = parser.parse_args()

    from leaderboard.protocol import get_protocol
    from leaderboard.store import Store

    protocol = get_protocol(args.protocol)
    if args.space:
        text = space_report(args.space, protocol)
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / f"{args.space}.md").write_text(text)
        print(text)
        return
    folder = COLLECTIONS / args.collection
    scenario = json.loads((folder / "plan.json").read_text())["scenario"]
    probe_names = [f"{f['name']}/{p['name']}" for f in scenario["data"]["fields"] for p in (f.get("probes") or [])]
    reference = Store(SNAPSHOTS / f"{args.protocol}.sqlite").reference(protocol.version, protocol.training_task)
    training = protocol.task(protocol.training_task).scenario == scenario["data"]["name"]  # ref_max is that task's
    ref_max = reference["ref_max"] if reference and training else None
    levels: dict[str, list[tuple[float, float]]] = {}
    for name, score, probes in scored_episodes(folder, protocol):
        gsm8k = float(probes[probe_names.index("math/gsm8k")]) if "math/gsm8k" in probe_names else np.nan
        levels.setdefault(name, []).append((score, gsm8k))
    rows = [f"| level | episodes | mean | best | best − ref_max ({ref_max:.3f}) | GSM8K probe (mean) |" if ref_max else
            "| level | episodes | mean | best | best − ref_max | GSM8K probe (mean) |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, found in sorted(levels.items()):
        scores = np.array([s for s, _ in found])
        gap = f"{scores.max() - ref_max:+.3f}" if ref_max else "–"
        rows.append(f"| {name} | {len(found)} | {scores.mean():.3f} | {scores.max():.3f} | {gap} | "
                    f"{np.nanmean([g for _, g in found]):.3f} |")
    text = "\n".join(rows) + f"\n\n{sum(len(v) for v in levels.values())} episodes of {args.collection}, scored by " \
                             f"{args.protocol}'s objective.\n"
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{args.collection}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
