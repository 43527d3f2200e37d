"""The official results of a protocol, shipped with the package: references, feedback statistics and the
built-in methods' episodes, so a submission on a fresh machine runs only its own episodes.

`leaderboard/official/<protocol>.json` is written by `dmix leaderboard export` from the store of the
protocol run that produced the README's table. A local store takes them in once (`install_official`),
never over local rows of the same name; a local re-run of a built-in method or of the references that
disagrees with the shipped numbers beyond their seed std is reported by `disagreements`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from agents.digest import saved_agent_digest
from dmix_gym.errors import ConfigError, MissingFileError
from dmix_gym.utils.atomic import atomic_path, write_json

from .machine import run_environment
from .protocol import Objective, Protocol
from .scores import mean_std
from .store import Store

OFFICIAL = Path(__file__).resolve().parent / "official"
FORMAT = 1


def official_path(version: str) -> Path:
    return OFFICIAL / f"{version}.json"


def official_agent(name: str) -> Path:
    """The shipped agent `<protocol>/<algo>` (what the spec `official:<protocol>/<algo>` loads)."""
    version, _, algo = name.partition("/")
    folder = OFFICIAL / "agents" / version
    found = [p for p in (folder / f"{algo}.pt", folder / f"{algo}.json") if p.is_file()] if algo else []
    if not found:
        shipped = sorted(f"{p.parent.name}/{p.stem}" for p in (OFFICIAL / "agents").glob("*/*") if p.suffix in (".pt", ".json"))
        raise ConfigError(f"no shipped agent {name!r}; shipped: {', '.join(shipped) or 'none'}")
    return found[0]


def _same_agent(shipped: Path, source: Path) -> bool:
    """Whether `shipped` (if there) holds the agent saved at `source`."""
    try:
        return shipped.is_file() and saved_agent_digest(shipped) == saved_agent_digest(source)
    except (MissingFileError, ConfigError):  # a shipped file unreadable, or a DT's model missing beside it: ship again
        return False


def ship_agents(chosen: dict[str, dict[str, Any]], version: str) -> dict[str, str]:
    """Copy each algorithm's chosen checkpoint (a model selection's `chosen`) into the package; return their specs.
    A shipped file that already holds the same agent (`agents.digest`: the same weights and settings, e.g. retrained on
    a fresh machine) is kept byte for byte, so the rows fingerprinted by it stay valid."""
    folder = OFFICIAL / "agents" / version
    specs = {}
    for algo, choice in chosen.items():
        source = Path(choice["path"])
        shipped = folder / f"{algo}{source.suffix}"
        files = [source, source.with_suffix(".d3")] if source.suffix == ".json" else [source]  # a DT's model sits beside it
        if _same_agent(shipped, source):
            files = []
        for file in files:
            with atomic_path(folder / f"{algo}{file.suffix}", suffix=file.suffix) as tmp:
                shutil.copyfile(file, tmp)
        splits, splits_file = choice.get("splits"), folder / f"{algo}.splits"  # the splits it was chosen with, if any
        if splits:
            splits_file.write_text(splits + "\n")
        else:
            splits_file.unlink(missing_ok=True)
        specs[algo] = f"official:{version}/{algo}" + (f"@{splits}" if splits else "")
    return specs


def load_official(version: str) -> dict[str, Any] | None:
    """The shipped official results of a protocol version, or None when it has none yet."""
    path = official_path(version)
    return json.loads(path.read_text()) if path.is_file() else None


def export_official(store: Store, protocol: Protocol, feedback_mean: np.ndarray, feedback_std: np.ndarray,
                    names: list[str] | None = None, path: Path | None = None) -> Path:
    """Write the finished submissions (all, or `names`) and the references of a store as the protocol's official file."""
    version = protocol.version
    refs = {t.name: store.reference(version, t.name) for t in protocol.tasks}
    missing = [task for task, ref in refs.items() if ref is None]
    if missing:
        raise ConfigError(f"protocol {version} has no references yet for tasks {missing}: compute them first")
    subs = [s for s in store.submissions(version) if s["status"] == "done" and (names is None or s["name"] in names)]
    official = {
        "format": FORMAT, "protocol": version, "dataset": protocol.dataset,
        "feedback_mean": np.asarray(feedback_mean).tolist(), "feedback_std": np.asarray(feedback_std).tolist(),
        "references": refs,
        "run": run_environment(),  # the exporting machine, where the rows' episodes ran: what `reproduce` compares with
        "submissions": [{**{k: s[k] for k in ("name", "policy", "fingerprint", "compute")},
                         "episodes": [{k: v for k, v in e.items() if k not in ("name", "protocol")}
                                      for e in store.episodes(version, s["name"])]} for s in subs],
    }
    target = path or official_path(version)
    write_json(target, official)
    return target


def open_store(db: str | Path, version: str) -> Store:
    """The results store at `db`, holding the protocol's official results (taken in on first use)."""
    store = Store(db)
    install_official(store, version)
    return store


def install_official(store: Store, version: str) -> list[str]:
    """Take the shipped official references and rows into `store` where it has none of its own; return the rows added."""
    official = load_official(version)
    if official is None:
        return []
    for task, ref in official["references"].items():
        if store.reference(version, task) is None:
            detail = {k: v for k, v in ref.items() if k not in ("ref_min", "ref_max")}
            store.set_reference(version, task, ref["ref_min"], ref["ref_max"], {**detail, "official": True})
    known = {s["name"] for s in store.submissions(version)}
    added = []
    for sub in official["submissions"]:
        if sub["name"] not in known:
            store.import_submission(sub["name"], version, sub["policy"], sub["fingerprint"], sub["compute"], sub["episodes"])
            added.append(sub["name"])
    return added


def disagreements(store: Store, version: str) -> list[str]:
    """Where local results of a built-in method or of the references differ from the shipped ones beyond seed std."""
    official = load_official(version)
    if official is None:
        return []
    notes = []
    for task, ref in official["references"].items():
        local = store.reference(version, task)
        if local is not None and not local.get("official"):
            for key in ("ref_min", "ref_max"):
                if abs(local[key] - ref[key]) > max(1e-6, 0.05 * abs(ref[key])):
                    notes.append(f"{task}: local {key} {local[key]:.3f} differs from the official {ref[key]:.3f}")
    by_policy = {s["policy"]: s for s in official["submissions"]}
    for sub in store.submissions(version):
        shipped = by_policy.get(sub["policy"])
        if shipped is None or sub["name"] == shipped["name"] or sub["status"] != "done":
            continue
        mine = store.episodes(version, sub["name"])
        for task in sorted({e["task"] for e in mine}):
            local = [e["balanced"] for e in mine if e["task"] == task]
            theirs = [e["balanced"] for e in shipped["episodes"] if e["task"] == task]
            if not theirs:
                continue
            (m1, _), (m2, s2) = mean_std(local), mean_std(theirs)
            if abs(m1 - m2) > max(s2, 1e-3):  # beyond the shipped numbers' seed std (and float noise across machines)
                notes.append(f"{sub['name']} ({sub['policy']}) on {task}: balanced {m1:.3f} here vs {m2:.3f} official "
                             f"(seed std {s2:.3f})")
    return notes


def ranking_objective(protocol: Protocol) -> Objective:
    """The score a protocol ranks by: its shipped objective (v2 on), else (v0, v1) the balanced score standardised by
    the per-field feedback mean and std of its official results or, before those ship, of its dataset."""
    if protocol.objective is not None:
        return protocol.objective
    official = load_official(protocol.version)
    if official is not None:
        return Objective(tuple(official["feedback_mean"]), tuple(official["feedback_std"]))
    from datasets_builder.publish import dmix_metadata, load_dmix_dataset

    try:
        meta = dmix_metadata(load_dmix_dataset(protocol.dataset))
    except MissingFileError as error:
        raise MissingFileError(f"protocol {protocol.version} standardises scores with dataset {protocol.dataset!r}: "
                               f"{error}") from error
    return Objective(tuple(meta["feedback_mean"]), tuple(meta["feedback_std"]))
