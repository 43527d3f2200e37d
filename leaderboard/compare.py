"""Is one row ahead of another beyond seed noise? Two leaderboard rows compared task by task, and every row against
each task's ceiling.

Two submissions run on the same evaluation seeds, so their difference is paired by seed. A reference row (the
static or schedule oracle) was confirmed on reference seeds instead, so a submission against it is compared
unpaired (Welch's interval). Differences are in normalised points, the table's unit. A row ahead of its task's
`ref_max` beyond noise means the search missed a better mixture: the reference moves.
"""

from __future__ import annotations

from dataclasses import dataclass

from dmix_gym.errors import ConfigError

from .protocol import Protocol
from .scores import mean_std, normalised_score, paired_difference, welch_difference
from .store import Store
from .table import REFERENCE_ROWS


@dataclass(frozen=True)
class Difference:
    """`row` minus `other` on one task, in normalised points, with its 95% interval."""

    task: str
    row: float
    other: float
    mean: float
    low: float
    high: float
    n: int
    paired: bool

    @property
    def verdict(self) -> str:
        return "ahead" if self.low > 0 else "behind" if self.high < 0 else "within noise"


def row_scores(store: Store, protocol: Protocol, name: str) -> dict[str, dict[int, float]]:
    """A row's balanced score by task and seed: a submission's evaluation episodes, or a reference row's confirmation
    episodes."""
    kinds = {title: kind for kind, title in REFERENCE_ROWS.items()} if protocol.search is not None else {}
    if name in kinds:
        scores = {}
        for task in protocol.tasks:
            ref = store.reference(protocol.version, task.name)
            if ref is not None and kinds[name] in ref:
                scores[task.name] = dict(zip(ref[kinds[name]]["seeds"], ref[kinds[name]]["scores"]))
        return scores
    submitted = {sub["name"] for sub in store.submissions(protocol.version)}
    if name not in submitted:
        raise ConfigError(f"no row {name!r} in {protocol.version}; its rows: {sorted(submitted | set(kinds))}")
    scores: dict[str, dict[int, float]] = {}
    for episode in store.episodes(protocol.version, name):
        scores.setdefault(episode["task"], {})[episode["seed"]] = episode["balanced"]
    return scores


def compare_rows(store: Store, protocol: Protocol, name: str, other: str) -> list[Difference]:
    """`name` minus `other` on every task both have run and whose references normalise: paired by seed where the two
    share 2 or more seeds, unpaired otherwise."""
    mine, theirs = row_scores(store, protocol, name), row_scores(store, protocol, other)
    differences = []
    for task in protocol.tasks:
        ref = store.reference(protocol.version, task.name)
        a, b = mine.get(task.name, {}), theirs.get(task.name, {})
        if ref is None or not ref["ref_max"] > ref["ref_min"] or len(a) < 2 or len(b) < 2:
            continue
        common = sorted(set(a) & set(b))
        paired = len(common) >= 2
        d = (paired_difference([a[s] for s in common], [b[s] for s in common]) if paired
             else welch_difference(list(a.values()), list(b.values())))
        differences.append(normalised_difference(task.name, list(a.values()), list(b.values()), d, ref, paired))
    return differences


def normalised_difference(task: str, a: list[float], b: list[float], d: dict[str, float], ref: dict,
                          paired: bool) -> Difference:
    """A balanced-score difference `d` of scores `a` minus `b` (`scores.paired_difference` or `welch_difference`)
    in the task's normalised points."""
    scale = 100.0 / (ref["ref_max"] - ref["ref_min"])
    row, other = (normalised_score(mean_std(x)[0], ref["ref_min"], ref["ref_max"]) for x in (a, b))
    return Difference(task, row=row, other=other, mean=d["mean"] * scale, low=d["low"] * scale,
                      high=d["high"] * scale, n=d["n"], paired=paired)


def against_ceiling(store: Store, protocol: Protocol) -> list[tuple[str, Difference]]:
    """(row, its difference from the task's ceiling) for every finished submission and every task whose reference
    says which confirmed oracle gave `ref_max` (`ref_max_from`): unpaired, against that oracle's confirmation
    episodes, in normalised points (the ceiling is 100)."""
    references = {task.name: store.reference(protocol.version, task.name) for task in protocol.tasks}
    found = []
    for submission in store.submissions(protocol.version):
        if submission["status"] != "done":
            continue
        mine = row_scores(store, protocol, submission["name"])
        for task in protocol.tasks:
            ref, scores = references[task.name], list(mine.get(task.name, {}).values())
            best = ref.get(ref.get("ref_max_from", ""), {}).get("scores", []) if ref else []
            if len(scores) < 2 or len(best) < 2 or not ref["ref_max"] > ref["ref_min"]:
                continue
            d = welch_difference(scores, best)
            found.append((submission["name"], normalised_difference(task.name, scores, best, d, ref, paired=False)))
    return found
