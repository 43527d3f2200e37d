"""The ranked table: per-task and overall scores of every submission to a protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .protocol import get_protocol
from .scores import iqm, mean_std, normalised_score, stratified_bootstrap_ci
from .store import Store


@dataclass
class Row:
    name: str
    status: str
    reason: str | None
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)  # task -> balanced/normalised mean, std, n, ...
    overall: float = float("nan")  # mean normalised score over the tasks that have valid references
    iqm: tuple[float, float, float] = (float("nan"),) * 3  # IQM of every (task, seed) normalised score, 95% CI
    source_tokens: float = float("nan")
    compute: dict[str, Any] | None = None


def scale_caption(protocol_version: str) -> str:
    """What 0 and 100 mean on a protocol's normalised scale: v2 on, 100 is the better of the searched static and
    schedule oracles; before, the best static target share of a coarse grid."""
    searched = get_protocol(protocol_version).search is not None
    best = "the task's best searched reference (static or schedule oracle)" if searched else "best static target share"
    return f"0 = random mixtures, 100 = {best}"


def ranked(store: Store, protocol_version: str) -> list[Row]:
    """Every submission's row, finished ones ranked by overall score, failed and running ones last."""
    protocol = get_protocol(protocol_version)
    rows = []
    for sub in store.submissions(protocol.version):
        row = Row(sub["name"], sub["status"], sub["reason"], compute=sub["compute"])
        episodes = store.episodes(protocol.version, sub["name"])
        per_task, runs = [], []
        for task in protocol.tasks:
            mine = [e for e in episodes if e["task"] == task.name]
            if not mine:
                continue
            ref = store.reference(protocol.version, task.name)
            balanced = [e["balanced"] for e in mine]
            stats: dict[str, Any] = {"n": len(mine), "balanced": mean_std(balanced),
                                     "final_feedback": np.mean([e["final_feedback"] for e in mine], axis=0).tolist()}
            if ref is not None and ref["ref_max"] > ref["ref_min"]:
                scores = [normalised_score(b, ref["ref_min"], ref["ref_max"]) for b in balanced]
                stats["normalised"] = mean_std(scores)
                runs.append(scores)
            row.tasks[task.name] = stats
            if "normalised" in stats:
                per_task.append(stats["normalised"][0])
        if per_task:
            row.overall = float(np.mean(per_task))
            row.iqm = (iqm(np.concatenate(runs)), *stratified_bootstrap_ci(runs))
        if episodes:
            row.source_tokens = float(np.mean([e["source_tokens"] for e in episodes]))
        rows.append(row)
    if protocol.search is not None:
        rows += reference_rows(store, protocol)
    ranks = ("done", "reference")
    finished = sorted((r for r in rows if r.status in ranks), key=lambda r: -r.overall if np.isfinite(r.overall) else np.inf)
    return finished + [r for r in rows if r.status not in ranks]


REFERENCE_ROWS = {"static": "Static oracle (reference)", "domain": "Domain oracle (reference)",
                  "schedule": "Schedule oracle (reference)", "domain_schedule": "Domain schedule oracle (reference)"}


def reference_rows(store: Store, protocol) -> list[Row]:
    """The searched references as rows (status 'reference'): each oracle's confirmation episodes, on reference seeds."""
    rows = {kind: Row(name, "reference", None) for kind, name in REFERENCE_ROWS.items()}
    runs: dict[str, list] = {kind: [] for kind in rows}
    for task in protocol.tasks:
        ref = store.reference(protocol.version, task.name)
        for kind, row in rows.items():
            if ref is None or kind not in ref or not ref["ref_max"] > ref["ref_min"]:
                continue
            scores = [normalised_score(b, ref["ref_min"], ref["ref_max"]) for b in ref[kind]["scores"]]
            row.tasks[task.name] = {"n": len(scores), "balanced": mean_std(ref[kind]["scores"]), "normalised": mean_std(scores),
                                    "label": ref[kind]["label"]}
            runs[kind].append(scores)
    found = []
    for kind, row in rows.items():
        if runs[kind]:
            row.overall = float(np.mean([t["normalised"][0] for t in row.tasks.values()]))
            row.iqm = (iqm(np.concatenate(runs[kind])), *stratified_bootstrap_ci(runs[kind]))
            found.append(row)
    return found


def score_cell(row: Row, task: str) -> str:
    """'mean ± std' of a task's normalised score, or of its balanced score marked '*' where references do not normalise."""
    stats = row.tasks.get(task)
    if stats is None:
        return ""
    score = stats.get("normalised", stats["balanced"])
    return f"{score[0]:.1f} ± {score[1]:.1f}" + ("" if "normalised" in stats else "*")


def one_off_compute(compute: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
    """What a submission spent before acting, over all its tasks.

    Each task's entry is what the policy had spent once that task was prepared (cached fits counted once,
    training once), so numbers take their largest value rather than their sum.
    """
    total: dict[str, Any] = {}
    for spent in (compute or {}).values():
        for key, value in spent.items():
            if isinstance(value, (int, float)):
                total[key] = max(total.get(key, value), value)
            else:
                total.setdefault(key, value)
    return total


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def compute_cell(row: Row) -> str:
    """One-off compute in words: an agent's training, a baseline's proxy runs, or none (online policies)."""
    if row.compute is None:
        return "–"
    spent = one_off_compute(row.compute)
    parts = []
    if "train_seconds" in spent:
        parts.append(f"training {_duration(spent['train_seconds'])}" + (f" on {spent['device']}" if "device" in spent else ""))
    if spent.get("proxy_runs"):
        parts.append(f"{spent['proxy_runs']:.0f} proxy runs, {_duration(spent.get('proxy_seconds', 0))}")
    if "episodes_from" in spent:  # the same policy's episodes on unchanged tasks, taken rather than re-run
        parts.append(f"episodes shared with {spent['episodes_from']}")
    return "; ".join(parts) or "none"


def _number(value: float, fmt: str) -> str:
    return fmt.format(value) if np.isfinite(value) else "–"


def table_cells(rows: list[Row], tasks: list[str]) -> tuple[list[str], list[list[str]]]:
    """The ranked table as text: its header and one row of cells per submission (what show, report and markdown print)."""
    header = ["#", "submission", "overall", "IQM [95% CI]", *tasks, "source tokens", "one-off compute", "status"]
    body = []
    for rank, row in enumerate(rows, 1):
        status = row.status if row.status != "failed" else f"failed: {row.reason}"
        interval = (f"{row.iqm[0]:.1f} [{row.iqm[1]:.1f}, {row.iqm[2]:.1f}]" if np.isfinite(row.iqm[0]) else "–")
        body.append([str(rank) if row.status in ("done", "reference") else "", row.name, _number(row.overall, "{:.1f}"), interval,
                     *[score_cell(row, t) for t in tasks], _number(row.source_tokens, "{:,.0f}"), compute_cell(row), status])
    return header, body


def markdown(rows: list[Row], tasks: list[str]) -> str:
    """The ranked table as a GitHub Markdown table (for a README)."""
    header, body = table_cells(rows, tasks)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" ---: " for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |" for cells in body]
    return "\n".join(lines) + "\n"

