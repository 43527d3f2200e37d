"""The committed store of trained agents: what model selection scores survives a fresh machine.

Training the agents of dmix-bench-v3's four folders takes about ten hours of 2 cores; the folders live under runs/,
which is not committed. `save` copies each finished training run (its metrics file is written last) into
benchmarks/results/agents/<folder>/: the metrics and the candidates model selection scores (`find_candidates`: SFT,
each offline RL algorithm's every-500-steps actors, the DT with its model), nothing resumable. `restore` copies them
back where missing, and the trainers read a finished run back instead of training it again (`agents.finished`).

A stored file is never overwritten: a retrain writes the same agent (`saved_agent_digest`), and one that does not is
reported, not stored, since selection episodes are keyed by the stored agent.

    python benchmarks/agents_store.py save runs/agents-cpu-v3-relative runs/agents-cpu-v3-response
    python benchmarks/agents_store.py restore   # every stored folder, into runs/
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STORE = ROOT / "benchmarks" / "results" / "agents"
RUNS = ROOT / "runs"


def finished_files(folder: Path) -> list[Path]:
    """The files of `folder`'s finished runs worth keeping: each finished algorithm's metrics and candidates."""
    from dmix_gym.errors import MissingFileError
    from leaderboard.selection import find_candidates

    try:
        candidates = find_candidates(folder)
    except MissingFileError:
        return []
    files = []
    for algo, group in candidates.items():
        metrics = folder / f"{algo}-metrics.json"
        if not metrics.is_file():  # still training: its snapshots so far are not the run's
            continue
        files.append(metrics)
        for path in group.values():
            files += [path, path.with_suffix(".d3")] if path.suffix == ".json" else [path]
    return files


def copy_new(source: Path, destination: Path) -> str:
    """Copy `source` to `destination` unless it is there; what happened, in a word."""
    from agents.digest import saved_agent_digest
    from dmix_gym.utils.atomic import atomic_path

    if destination.exists():
        if destination.suffix in (".pt", ".json") and not destination.name.endswith("-metrics.json"):
            if saved_agent_digest(destination) != saved_agent_digest(source):
                return "differs"
        return "kept"
    with atomic_path(destination, suffix=destination.suffix) as temporary:
        shutil.copyfile(source, temporary)
    return "copied"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("save", "restore"))
    parser.add_argument("folders", nargs="*", type=Path, help="save: the agents folders")
    parser.add_argument("--store", type=Path, default=STORE)
    parser.add_argument("--runs", type=Path, default=RUNS, help="restore: where the folders go")
    args = parser.parse_args()
    pairs = []
    if args.action == "save":
        for folder in args.folders:
            pairs += [(path, args.store / folder.name / path.relative_to(folder)) for path in finished_files(folder)]
    else:
        for stored in sorted(p for p in args.store.glob("*") if p.is_dir()):
            pairs += [(path, args.runs / stored.name / path.relative_to(stored)) for path in stored.rglob("*") if path.is_file()]
    done: dict[str, int] = {}
    for source, destination in pairs:
        outcome = copy_new(source, destination)
        done[outcome] = done.get(outcome, 0) + 1
        if outcome == "differs":
            print(f"{source} holds another agent than {destination}: kept the stored one", file=sys.stderr)
    print(f"agents store, {args.action}: " + (", ".join(f"{n} {what}" for what, n in sorted(done.items())) or "nothing"))


if __name__ == "__main__":
    main()
