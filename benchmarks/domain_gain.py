"""What re-weighting domains adds over the line's best static target share, per task, from dmix-bench-v3's reference
logs (committed as the references run, so this reads a finished or a partial run):

- `domain-gain.md`: per task, the line's best static share and the best domain mixture found so far (its mean on the
  search seeds), and, once confirmed, both on the 5 confirmation seeds with their paired difference and 95% interval;
- `convergence.png`: each task's best search-seed mean against episodes spent, the line search first, then each
  stage of the domain search (the reference is a ceiling where the curve has flattened).

    python benchmarks/domain_gain.py [--protocol dmix-bench-v3] [--logs benchmarks/results/leaderboard/live/references]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

LOGS = Path("benchmarks/results/leaderboard/live/references")
OUT = Path("benchmarks/results/domain_gain")
SEARCH_SEEDS = range(5_000_000, 5_001_000)
CONFIRM_SEEDS = range(5_001_000, 5_002_000)


def read_log(path: Path) -> list[dict]:
    """The logged episodes of one task, in the order they ended."""
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:  # a line torn by a crash mid-write
            continue
    return records


def static_kind(label: str) -> str | None:
    return "line" if label.startswith("static:target-share=") else "domain" if label.startswith("domains:") else None


def trail(records: list[dict]) -> list[tuple[int, float, str]]:
    """(episodes spent, best mean over a candidate's complete search seeds so far, its kind) after every episode."""
    scores: dict[str, list[float]] = {}
    needed = max((sum(1 for r in records if r["label"] == label and r["seed"] in SEARCH_SEEDS)
                  for label in {r["label"] for r in records if static_kind(r["label"])}), default=1)
    best, out = -np.inf, []
    kind_of_best = "line"
    for spent, r in enumerate(records, 1):
        kind = static_kind(r["label"])
        if kind and r["seed"] in SEARCH_SEEDS:
            scores.setdefault(r["label"], []).append(r["score"])
            if len(scores[r["label"]]) == needed and np.mean(scores[r["label"]]) > best:
                best, kind_of_best = float(np.mean(scores[r["label"]])), kind
        if np.isfinite(best):
            out.append((spent, best, kind_of_best))
    return out


def best_of(records: list[dict], kind: str) -> tuple[str, float] | None:
    """The label of a kind with the best mean on the search seeds, and that mean."""
    scores: dict[str, list[float]] = {}
    for r in records:
        if static_kind(r["label"]) == kind and r["seed"] in SEARCH_SEEDS:
            scores.setdefault(r["label"], []).append(r["score"])
    if not scores:
        return None
    label = max(scores, key=lambda k: np.mean(scores[k]))
    return label, float(np.mean(scores[label]))


def confirmed(records: list[dict], label: str) -> dict[int, float]:
    return {r["seed"]: r["score"] for r in records if r["label"] == label and r["seed"] in CONFIRM_SEEDS}


def table(logs: dict[str, list[dict]]) -> str:
    from leaderboard.scores import paired_difference

    rows = ["| task | line's best (search mean) | best domain mixture (search mean) | confirmed: line → domain "
            "| domain − line [95% CI] | episodes |", "| --- | --- | --- | --- | ---: | ---: |"]
    for task, records in logs.items():
        line, domain = best_of(records, "line"), best_of(records, "domain")
        if line is None:
            continue
        cells = [task, f"`{line[0]}` ({line[1]:.3f})", "–" if domain is None else f"`{domain[0]}` ({domain[1]:.3f})"]
        a, b = confirmed(records, line[0]), confirmed(records, domain[0]) if domain else {}
        seeds = sorted(set(a) & set(b))
        if len(seeds) >= 2:
            d = paired_difference([b[s] for s in seeds], [a[s] for s in seeds])
            cells += [f"{np.mean([a[s] for s in seeds]):.3f} → {np.mean([b[s] for s in seeds]):.3f}",
                      f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"]
        else:
            cells += ["not confirmed yet", "–"]
        rows.append("| " + " | ".join(cells + [str(len(records))]) + " |")
    return "\n".join(rows)


def plot(logs: dict[str, list[dict]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for task, records in logs.items():
        points = trail(records)
        if points:
            ax.step([p[0] for p in points], [p[1] for p in points], where="post", label=task)
    ax.set_xlabel("episodes spent on the task's references (random, line search, schedules, domain search)")
    ax.set_ylabel("best static mean on the search seeds")
    ax.set_title("dmix-bench-v3 references: the static search's convergence")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocol", default="dmix-bench-v3")
    parser.add_argument("--logs", type=Path, default=LOGS)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    folder = args.logs / args.protocol
    logs = {path.stem: read_log(path) for path in sorted(folder.glob("*.jsonl"))}
    text = table(logs)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.protocol}.md").write_text(text + "\n")
    print(text)
    print(f"drawn: {plot(logs, args.out / f'{args.protocol}-convergence.png')}")


if __name__ == "__main__":
    main()
