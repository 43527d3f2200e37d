"""Where does each row's mixture sit in the domain space, against the domain oracle's? One picture per task.

For every row of an official results file (its episodes' traces) and for the references of a protocol (their logged
mean mixtures), two coordinates of the mean mixture over an episode's steps: the target share, and the share of the
target weight on the domain the task's domain oracle weights most. The line `(1 - s) p0 + s p*` is a horizontal line
at p*'s own weight on that domain; the domain oracle sits far above it. No env step runs.

    python benchmarks/domain_position.py [--rows dmix-bench-v2] [--references dmix-bench-v3] [--task in-distribution]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LOGS = ROOT / "benchmarks" / "results" / "leaderboard" / "live" / "references"
OUT = ROOT / "benchmarks" / "results" / "domain_gain"
CONFIRM_SEEDS = range(5_001_000, 5_002_000)


def oracle_mixture(path: Path) -> tuple[str, np.ndarray] | None:
    """The confirmed static domain mixture with the best mean on the confirmation seeds, and its mean mixture."""
    from domain_gain import best_of, read_log

    records = read_log(path)
    found = best_of(records, "domain")
    if found is None:
        return None
    rows = [r["mixture"] for r in records if r["label"] == found[0] and r.get("mixture")]
    return (found[0], np.mean(rows, axis=0)) if rows else None


def position(mixtures: np.ndarray, target: np.ndarray, top: int) -> tuple[float, float]:
    """(mean target share, mean share of the target weight on domain `top`) over an episode's steps."""
    mixtures = np.atleast_2d(mixtures)
    share = mixtures[:, target].sum(1)
    on_top = np.divide(mixtures[:, top], share, out=np.zeros_like(share), where=share > 0)
    return float(share.mean()), float(on_top.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="dmix-bench-v2", help="the official results file whose rows to place")
    parser.add_argument("--references", default="dmix-bench-v3", help="the protocol whose domain oracle to place")
    parser.add_argument("--task", default="in-distribution")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    official = json.loads((ROOT / "leaderboard" / "official" / f"{args.rows}.json").read_text())
    oracle = oracle_mixture(LOGS / args.references / f"{args.task}.jsonl")
    if oracle is None:
        raise SystemExit(f"no confirmed domain mixture in {args.references}'s {args.task} references yet")
    label, best = oracle
    rows: dict[str, tuple[float, float]] = {}
    domains = None
    for row in official["submissions"]:
        episodes = [e for e in row["episodes"] if e["task"] == args.task]
        if not episodes:
            continue
        trace = episodes[0]["trace"]
        domains = trace["domains"]
        target = np.array([not d.startswith(trace["fields"][0] + "/") for d in domains])
        top = int(np.argmax(np.where(target, best, -1)))
        points = [position(np.asarray(e["trace"]["mixtures"][1:]), target, top) for e in episodes]
        rows[row["name"]] = tuple(np.mean(points, axis=0))
    top_name = domains[top]
    oracle_point = position(best, target, top)
    lines = [f"| row | target share | share of the target weight on `{top_name}` |", "| --- | ---: | ---: |"]
    lines += [f"| {name} | {s:.3f} | {w:.3f} |" for name, (s, w) in sorted(rows.items(), key=lambda kv: -kv[1][1])]
    lines.append(f"| **domain oracle** ({args.references}) | {oracle_point[0]:.3f} | {oracle_point[1]:.3f} |")

    fig, ax = plt.subplots(figsize=(7.5, 5))
    for name, (s, w) in rows.items():
        ax.scatter(s, w, s=25, color="tab:blue" if "agent" in name else "tab:gray")
        ax.annotate(name, (s, w), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.scatter(*oracle_point, marker="*", s=220, color="tab:red", label=f"domain oracle ({args.references})")
    if "Naive" in rows:  # Naive holds p*: its split is the line's at every share
        ax.axhline(rows["Naive"][1], color="tab:red", lw=0.8, ls="--", label="the line (1 - s) p0 + s p*")
    ax.set_xlabel("mean target share")
    ax.set_ylabel(f"share of the target weight on {top_name}")
    ax.set_title(f"{args.rows} rows on {args.task}, against {args.references}'s domain oracle")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    OUT.mkdir(parents=True, exist_ok=True)
    png = OUT / f"positions-{args.rows}-{args.task}.png"
    fig.savefig(png, dpi=120)
    (OUT / f"positions-{args.rows}-{args.task}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"drawn: {png}")


if __name__ == "__main__":
    main()
