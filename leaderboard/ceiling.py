"""The ceiling moves: a row ahead of its task's `ref_max` beyond noise is a policy the reference search missed.

`compare.against_ceiling` flags a row whose evaluation episodes beat the ceiling oracle's confirmation episodes
(unpaired). `move_ceilings` then runs the flagged row's policy on that oracle's own confirmation seeds, so the two are
paired seed by seed, and moves the reference only if the row is ahead there too: `ref_max` becomes the row's mean on
those seeds, `ref_max_from` becomes `row:<name>` (its policy, seeds and scores kept beside the oracles), and the
previous ceiling is recorded. Every check, moved or not, is kept in the reference's `ceiling_checks`, so the README can
say what moved the reference and by how much. Tables normalise when they are shown, so every row follows the move.
"""

from __future__ import annotations

from typing import Any

from dmix_gym.errors import ConfigError

from .compare import against_ceiling
from .protocol import Protocol
from .registry import resolve_policy
from .scores import mean_std, paired_difference
from .search_log import EpisodeLog, evaluate
from .store import Store
from .submit import reference_log, refuse_frozen


def move_ceilings(store: Store, protocol: Protocol, workers: int = 1, data_dir=None, cache_dir=None,
                  progress: bool = True) -> list[dict[str, Any]]:
    """Check every (row, task) pair above its ceiling on the ceiling's confirmation seeds and move the reference where
    the row is ahead there beyond noise (paired 95% interval). Returns the checks made; a check already recorded against
    the same ceiling is not made again (its episodes are logged, so a crash resumes)."""
    flagged = [(name, d.task) for name, d in against_ceiling(store, protocol) if d.verdict == "ahead"]
    if flagged:
        refuse_frozen(protocol)
    policies = {sub["name"]: sub for sub in store.submissions(protocol.version)}
    checks = []
    for name, task_name in flagged:
        ref = store.reference(protocol.version, task_name)
        ceiling = ref["ref_max_from"]
        checked = any(c["row"] == name and c["ceiling"] == ceiling for c in ref.get("ceiling_checks", []))
        if checked or ceiling == f"row:{name}":  # made before, or the row is the ceiling itself
            continue
        check = confirm_row(store, protocol, policies[name], task_name, ref, workers, data_dir, cache_dir, progress)
        record_check(store, protocol, task_name, ref, check)
        checks.append(check)
    return checks


def confirm_row(store: Store, protocol: Protocol, submission: dict[str, Any], task_name: str, ref: dict[str, Any],
                workers: int, data_dir, cache_dir, progress: bool) -> dict[str, Any]:
    """The row's policy on the ceiling oracle's confirmation seeds, paired against the oracle's scores there."""
    policy, fingerprint = resolve_policy(submission["policy"])
    if fingerprint != submission["fingerprint"]:
        raise ConfigError(f"row {submission['name']!r}: its policy {submission['policy']!r} is no longer the one it was "
                          "scored with (another fingerprint); re-submit the row before it can move a reference")
    oracle = ref[ref["ref_max_from"]]
    task = protocol.task(task_name)
    label = f"row:{submission['name']}"
    log = EpisodeLog(reference_log(store, protocol, task))
    scores = evaluate({label: policy}, list(oracle["seeds"]), task, protocol.objective, log, workers, data_dir, cache_dir,
                      progress)[label]
    difference = paired_difference(scores, oracle["scores"])
    mean, std = mean_std(scores)
    return {"row": submission["name"], "task": task_name, "ceiling": ref["ref_max_from"], "ceiling_mean": ref["ref_max"],
            "policy": submission["policy"], "seeds": list(oracle["seeds"]), "scores": scores.tolist(), "mean": mean,
            "std": std, "minus_ceiling": difference, "moved": difference["low"] > 0}


def record_check(store: Store, protocol: Protocol, task_name: str, ref: dict[str, Any], check: dict[str, Any]) -> None:
    """Keep the check in the reference and, if the row was ahead, make it the task's ceiling."""
    detail = {key: value for key, value in ref.items() if key not in ("ref_min", "ref_max", "official")}  # now local
    detail["ceiling_checks"] = [*ref.get("ceiling_checks", []), check]
    ref_max = ref["ref_max"]
    if check["moved"]:
        key = f"row:{check['row']}"
        detail[key] = {"label": check["policy"], "seeds": check["seeds"], "scores": check["scores"], "mean": check["mean"],
                       "std": check["std"]}
        detail["ref_max_from"], ref_max = key, check["mean"]
    store.set_reference(protocol.version, task_name, ref["ref_min"], ref_max, detail)
