"""What re-weighting domains adds over the line's best static target share, per task, from dmix-bench-v3's reference
logs (committed as the references run, so this reads a finished or a partial run):

- `domain-gain.md`: per task, the line's best static share and the best domain mixture found so far (its mean on the
  search seeds), and, once confirmed, both on the 5 confirmation seeds with their paired difference and 95% interval;
- beside them, where searched, the best schedule over the domain optimum's splits against the domain optimum, and
  each confirmed winner's probes (GSM8K test, MMLU STEM: outside the score), so that a domain optimum that wins the
  rewarded set by giving a probe away shows it;
- `convergence.png`: each task's best search-seed mean against episodes spent, the line search first, then each
  stage of the domain search (the reference is a ceiling where the curve has flattened);
- a table of how each task's ranking of static mixtures holds on every other task (Spearman's rho over the mixtures
  both searched, and what the first's best of them costs on the second): why a transferred constant is hard to beat;
- `tradeoff.png` and a table: every searched static mixture whose episodes logged probes, its score against its
  GSM8K probe on the same search seeds, and the Pareto front of the two (what a mixture near the optimum's score
  keeps of the benchmark the score does not reward).

Reference episodes logged before traces carried probes have none; `--probes TASK` re-runs that task's confirmed line
and domain winners on their confirmation seeds into `probes/<protocol>/<task>.jsonl` (2 x 5 episodes) and checks
every score equals the logged one (within 1e-9: a log from another machine can differ in the last bits).

    python benchmarks/domain_gain.py [--protocol dmix-bench-v3] [--logs benchmarks/results/leaderboard/live/references]
    python benchmarks/domain_gain.py --probes in-distribution [--workers 2]
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

LOGS = Path("benchmarks/results/leaderboard/live/references")
OUT = Path("benchmarks/results/domain_gain")
SEARCH_SEEDS = range(5_000_000, 5_001_000)
CONFIRM_SEEDS = range(5_001_000, 5_002_000)
REPRODUCED = 1e-9  # a re-run within this of the logged score is the same episode (float summation order aside)


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
    """'line' or 'domain' for a static mixture's label; None for schedules and random mixtures."""
    if ";" in label:  # a schedule over a domain mixture's splits
        return None
    return "line" if label.startswith("static:target-share=") else "domain" if label.startswith("domains:") else None


def schedule_kind(label: str) -> str | None:
    return "line" if label.startswith("schedule:") else "domain" if label.startswith("domains:") and ";" in label else None


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


def search_means(records: list[dict], keep=static_kind) -> dict[str, float]:
    """The mean score on the search seeds of every label `keep` accepts (by default, every static mixture)."""
    scores: dict[str, list[float]] = {}
    for r in records:
        if keep(r["label"]) and r["seed"] in SEARCH_SEEDS:
            scores.setdefault(r["label"], []).append(r["score"])
    return {label: float(np.mean(v)) for label, v in scores.items()}


def best_of(records: list[dict], kind: str, kind_of=static_kind) -> tuple[str, float] | None:
    """The label of a kind with the best mean on the search seeds, and that mean."""
    means = search_means(records, lambda label: kind_of(label) == kind)
    if not means:
        return None
    label = max(means, key=means.get)
    return label, means[label]


def confirmed(records: list[dict], label: str) -> dict[int, float]:
    return {r["seed"]: r["score"] for r in records if r["label"] == label and r["seed"] in CONFIRM_SEEDS}


def confirmed_probes(records: list[dict], label: str) -> dict[str, float]:
    """A label's mean final probes over its confirmation episodes that logged them."""
    rows = [r["final_probes"] for r in records if r["label"] == label and r["seed"] in CONFIRM_SEEDS and r.get("final_probes")]
    return {name: float(np.mean([row[name] for row in rows])) for name in rows[0]} if rows else {}


def probes_table(logs: dict[str, list[dict]], extra: dict[str, list[dict]]) -> str:
    """Per task, the confirmed line winner's and domain winner's mean probes (log-prob per answer token)."""
    rows = ["| task | mixture | " + " | ".join(["probe", "line's best", "domain optimum", "domain − line"]) + " |",
            "| --- | --- | --- | ---: | ---: | ---: |"]
    for task, records in logs.items():
        line, domain = best_of(records, "line"), best_of(records, "domain")
        if line is None or domain is None:
            continue
        every = records + extra.get(task, [])
        a, b = confirmed_probes(every, line[0]), confirmed_probes(every, domain[0])
        for name in sorted(set(a) & set(b)):
            rows.append(f"| {task} | | {name} | {a[name]:.4f} | {b[name]:.4f} | {b[name] - a[name]:+.4f} |")
    return "\n".join(rows) if len(rows) > 2 else ""


TRADEOFF_PROBE = "math/gsm8k"


def tradeoff(records: list[dict], probe: str = TRADEOFF_PROBE) -> list[tuple[str, float, float]]:
    """(label, mean score, mean probe) of every static mixture logged with `probe` on the two search seeds most
    mixtures ran on, so that every point averages the same seeds."""
    runs = [r for r in records if static_kind(r["label"]) and r["seed"] in SEARCH_SEEDS and probe in r.get("final_probes", {})]
    seeds = sorted({r["seed"] for r in runs}, key=lambda seed: -sum(r["seed"] == seed for r in runs))[:2]
    by_label: dict[str, dict[int, dict]] = {}
    for r in runs:
        if r["seed"] in seeds:
            by_label.setdefault(r["label"], {})[r["seed"]] = r
    return [(label, float(np.mean([r["score"] for r in found.values()])),
             float(np.mean([r["final_probes"][probe] for r in found.values()])))
            for label, found in by_label.items() if len(found) == len(seeds)]


def pareto_front(points: list[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
    """The points no other point beats on both score and probe, best score first."""
    front, best_probe = [], -np.inf
    for point in sorted(points, key=lambda p: (-p[1], -p[2])):
        if point[2] > best_probe:
            front.append(point)
            best_probe = point[2]
    return front


def tradeoff_table(logs: dict[str, list[dict]]) -> str:
    rows = [f"| task | mixture on the score/{TRADEOFF_PROBE} Pareto front | score (search seeds) | − best | "
            f"{TRADEOFF_PROBE} | − best's |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    for task, records in logs.items():
        front = pareto_front(tradeoff(records))
        for label, score, probe in front[:6]:
            rows.append(f"| {task} | `{label}` | {score:.3f} | {score - front[0][1]:+.3f} | {probe:.3f} | "
                        f"{probe - front[0][2]:+.3f} |")
    return "\n".join(rows) if len(rows) > 2 else ""


def plot_tradeoff(logs: dict[str, list[dict]], path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = {task: tradeoff(records) for task, records in logs.items()}
    found = {task: points for task, points in found.items() if points}
    if not found:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for task, points in found.items():
        dots = ax.scatter([p[1] for p in points], [p[2] for p in points], s=12, alpha=0.5, label=task)
        front = pareto_front(points)
        ax.plot([p[1] for p in front], [p[2] for p in front], color=dots.get_facecolor()[0], lw=1)
    ax.set_xlabel("balanced score (mean over the search seeds)")
    ax.set_ylabel(f"{TRADEOFF_PROBE} probe (log-prob per answer token, not rewarded)")
    ax.set_title("dmix-bench-v3 searched mixtures: what the score gives away (line: Pareto front)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def transfer_table(logs: dict[str, list[dict]], min_common: int = 5) -> str:
    """Does a task's ranking of static mixtures hold on another task? Per pair of tasks, over the static mixtures both
    searched: Spearman's rank correlation of their search-seed means, and what the first task's best of them costs on
    the second (the second's best − its score there): what holding one task's optimum elsewhere (Static-transfer)
    gives away, among the mixtures the searches share."""
    from scipy.stats import spearmanr

    means = {task: search_means(records) for task, records in logs.items()}
    lines = ["| from task | to task | shared static mixtures | Spearman's rho | to's best − to's score at from's best |",
             "| --- | --- | ---: | ---: | ---: |"]
    for first, second in itertools.permutations(sorted(means), 2):
        common = sorted(set(means[first]) & set(means[second]))
        if len(common) < min_common:
            continue
        rho = spearmanr([means[first][c] for c in common], [means[second][c] for c in common])[0]
        pick = max(common, key=lambda c: means[first][c])
        regret = max(means[second][c] for c in common) - means[second][pick]
        lines.append(f"| {first} | {second} | {len(common)} | {rho:+.2f} | {regret:.3f} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def paired_cells(records: list[dict], before: str, after: str | None) -> list[str]:
    """Two table cells: both labels' means on the confirmation seeds they share, and after − before with its 95% interval."""
    from leaderboard.scores import paired_difference

    a, b = confirmed(records, before), confirmed(records, after) if after else {}
    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return ["not confirmed yet", "–"]
    d = paired_difference([b[s] for s in seeds], [a[s] for s in seeds])
    return [f"{np.mean([a[s] for s in seeds]):.3f} → {np.mean([b[s] for s in seeds]):.3f}",
            f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"]


def schedule_table(logs: dict[str, list[dict]]) -> str:
    """Per task that searched them, the best schedule over the domain optimum's splits against the domain optimum."""
    rows = ["| task | best domain schedule (search mean) | confirmed: domain → schedule | schedule − domain [95% CI] |",
            "| --- | --- | --- | ---: |"]
    for task, records in logs.items():
        domain, schedule = best_of(records, "domain"), best_of(records, "domain", schedule_kind)
        if domain is None or schedule is None:
            continue
        cells = [task, f"`…{schedule[0][schedule[0].index(';'):]}` ({schedule[1]:.3f})"]
        rows.append("| " + " | ".join(cells + paired_cells(records, domain[0], schedule[0])) + " |")
    return "\n".join(rows) if len(rows) > 2 else ""


def rerun_probes(protocol: str, task_name: str, logs: Path, out: Path, workers: int) -> Path:
    """Re-run a task's confirmed line and domain winners on their confirmation seeds, with probes, into their own
    log; an error if any score differs from the reference log's."""
    from leaderboard.protocol import get_protocol
    from leaderboard.registry import spec_policy
    from leaderboard.search_log import EpisodeLog, evaluate

    records = read_log(logs / protocol / f"{task_name}.jsonl")
    task = get_protocol(protocol).task(task_name)
    labels = [found[0] for found in (best_of(records, "line"), best_of(records, "domain")) if found]
    path = out / "probes" / protocol / f"{task_name}.jsonl"
    log = EpisodeLog(path)
    for label in labels:
        seeds = sorted(confirmed(records, label))
        scores = evaluate({label: spec_policy(label)}, seeds, task, task.objective, log, workers)[label]
        logged = np.array([confirmed(records, label)[s] for s in seeds])
        gap = float(np.abs(scores - logged).max())
        if gap > REPRODUCED:
            raise SystemExit(f"{task_name} {label}: re-run scores differ from the reference log by up to {gap:.2e}")
        print(f"{task_name} {label}: {len(seeds)} episodes, " + ("bit for bit" if gap == 0 else f"within {gap:.1e}"))
    return path


def table(logs: dict[str, list[dict]]) -> str:
    rows = ["| task | line's best (search mean) | best domain mixture (search mean) | confirmed: line → domain "
            "| domain − line [95% CI] | episodes |", "| --- | --- | --- | --- | ---: | ---: |"]
    for task, records in logs.items():
        line, domain = best_of(records, "line"), best_of(records, "domain")
        if line is None:
            continue
        cells = [task, f"`{line[0]}` ({line[1]:.3f})", "–" if domain is None else f"`{domain[0]}` ({domain[1]:.3f})"]
        cells += paired_cells(records, line[0], domain[0] if domain else None)
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
    parser.add_argument("--probes", metavar="TASK", help="re-run TASK's confirmed winners with probes (see above)")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    if args.probes:
        print(f"reproduced exactly, with probes: {rerun_probes(args.protocol, args.probes, args.logs, args.out, args.workers)}")
    folder = args.logs / args.protocol
    logs = {path.stem: read_log(path) for path in sorted(folder.glob("*.jsonl"))}
    extra = {path.stem: read_log(path) for path in sorted((args.out / "probes" / args.protocol).glob("*.jsonl"))}
    parts = (table(logs), schedule_table(logs), probes_table(logs, extra), transfer_table(logs), tradeoff_table(logs))
    text = "\n\n".join(part for part in parts if part)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.protocol}.md").write_text(text + "\n")
    print(text)
    print(f"drawn: {plot(logs, args.out / f'{args.protocol}-convergence.png')}")
    print(f"drawn: {plot_tradeoff(logs, args.out / f'{args.protocol}-tradeoff.png')}")


if __name__ == "__main__":
    main()
