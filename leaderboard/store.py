"""The results store: an embedded SQLite database (one file), written one transaction per fact.

A submission is keyed by (name, protocol). Its episodes are written as they finish, so a crashed
run resumes; re-submitting the same policy (same fingerprint) keeps what is done, and a different
policy under the same name replaces everything, never duplicating rows. A failed submission is
recorded with its reason and leaves every other row as it was. Reference episodes are stored one by
one too, so computing a protocol's references also resumes.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

SCHEMA = """
CREATE TABLE IF NOT EXISTS submissions (
    name TEXT NOT NULL, protocol TEXT NOT NULL, policy TEXT NOT NULL, fingerprint TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')), reason TEXT, compute TEXT, updated REAL,
    PRIMARY KEY (name, protocol)
);
CREATE TABLE IF NOT EXISTS episodes (
    name TEXT NOT NULL, protocol TEXT NOT NULL, task TEXT NOT NULL, seed INTEGER NOT NULL,
    final_feedback TEXT NOT NULL, balanced REAL NOT NULL, episode_return REAL NOT NULL, source_tokens INTEGER NOT NULL,
    seconds REAL NOT NULL, trace TEXT NOT NULL,
    PRIMARY KEY (name, protocol, task, seed)
);
CREATE TABLE IF NOT EXISTS reference_episodes (
    protocol TEXT NOT NULL, task TEXT NOT NULL, policy TEXT NOT NULL, seed INTEGER NOT NULL, balanced REAL NOT NULL,
    PRIMARY KEY (protocol, task, policy, seed)
);
CREATE TABLE IF NOT EXISTS refs (
    protocol TEXT NOT NULL, task TEXT NOT NULL, ref_min REAL NOT NULL, ref_max REAL NOT NULL, detail TEXT NOT NULL,
    PRIMARY KEY (protocol, task)
);
"""


class Store:
    """Read and write leaderboard rows in one SQLite file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=60)
        db.row_factory = sqlite3.Row
        try:
            with db:  # one transaction: committed whole, or rolled back whole
                yield db
        finally:
            db.close()

    # --- submissions ------------------------------------------------------------------------------

    def begin(self, name: str, protocol: str, policy: str, fingerprint: str) -> set[tuple[str, int]]:
        """Open (or reopen) a submission; return the (task, seed) episodes already done for this very policy."""
        with self._connect() as db:
            row = db.execute("SELECT fingerprint FROM submissions WHERE name=? AND protocol=?", (name, protocol)).fetchone()
            if row is not None and row["fingerprint"] != fingerprint:  # another policy under this name: replace it
                db.execute("DELETE FROM episodes WHERE name=? AND protocol=?", (name, protocol))
            db.execute("INSERT OR REPLACE INTO submissions VALUES (?, ?, ?, ?, 'running', NULL, NULL, ?)",
                       (name, protocol, policy, fingerprint, time.time()))
            done = db.execute("SELECT task, seed FROM episodes WHERE name=? AND protocol=?", (name, protocol)).fetchall()
        return {(r["task"], r["seed"]) for r in done}

    def finished(self, name: str, protocol: str, fingerprint: str) -> bool:
        """Whether this very policy's submission already ended with every episode stored."""
        with self._connect() as db:
            row = db.execute("SELECT fingerprint, status FROM submissions WHERE name=? AND protocol=?",
                             (name, protocol)).fetchone()
        return row is not None and row["fingerprint"] == fingerprint and row["status"] == "done"

    def add_episode(self, name: str, protocol: str, task: str, seed: int, final_feedback: list[float], balanced: float,
                    episode_return: float, source_tokens: int, seconds: float, trace: dict[str, Any]) -> None:
        with self._connect() as db:
            db.execute("INSERT OR REPLACE INTO episodes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (name, protocol, task, seed, json.dumps(final_feedback), balanced, episode_return, source_tokens,
                        seconds, json.dumps(trace)))

    def finish(self, name: str, protocol: str, compute: dict[str, Any] | None = None) -> None:
        self._set_status(name, protocol, "done", None, compute)

    def fail(self, name: str, protocol: str, reason: str) -> None:
        self._set_status(name, protocol, "failed", reason, None)

    def _set_status(self, name: str, protocol: str, status: str, reason: str | None, compute: dict | None) -> None:
        with self._connect() as db:
            db.execute("UPDATE submissions SET status=?, reason=?, compute=?, updated=? WHERE name=? AND protocol=?",
                       (status, reason, json.dumps(compute) if compute is not None else None, time.time(), name, protocol))

    def record_failure(self, name: str, protocol: str, policy: str, reason: str) -> bool:
        """A submission that could not even start (e.g. its policy does not import); False, and nothing written, when
        a finished row of that name exists: a failed retry never overwrites finished work."""
        with self._connect() as db:
            row = db.execute("SELECT status FROM submissions WHERE name=? AND protocol=?", (name, protocol)).fetchone()
            if row is not None and row["status"] == "done":
                return False
            if row is None:
                db.execute("INSERT INTO submissions VALUES (?, ?, ?, '', 'failed', ?, NULL, ?)",
                           (name, protocol, policy, reason, time.time()))
            else:
                db.execute("UPDATE submissions SET status='failed', reason=?, policy=?, updated=? WHERE name=? AND protocol=?",
                           (reason, policy, time.time(), name, protocol))
        return True

    def import_submission(self, name: str, protocol: str, policy: str, fingerprint: str, compute: dict | None,
                          episodes: list[dict[str, Any]]) -> None:
        """A finished submission and its episodes, written in one transaction (the official rows a package ships)."""
        with self._connect() as db:
            db.execute("INSERT OR REPLACE INTO submissions VALUES (?, ?, ?, ?, 'done', NULL, ?, ?)",
                       (name, protocol, policy, fingerprint, json.dumps(compute) if compute is not None else None, time.time()))
            db.executemany("INSERT OR REPLACE INTO episodes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
                (name, protocol, e["task"], e["seed"], json.dumps(e["final_feedback"]), e["balanced"], e["episode_return"],
                 e["source_tokens"], e["seconds"], json.dumps(e["trace"])) for e in episodes])

    def backup(self, path: str | Path) -> Path:
        """A consistent copy of the database at `path` (SQLite's online backup), safe while a run writes to it."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        source, copy = sqlite3.connect(self.path, timeout=60), sqlite3.connect(partial)
        try:
            source.backup(copy)
        finally:
            copy.close()
            source.close()
        partial.replace(path)
        return path

    # --- references -------------------------------------------------------------------------------

    def set_reference(self, protocol: str, task: str, ref_min: float, ref_max: float, detail: dict[str, Any]) -> None:
        with self._connect() as db:
            db.execute("INSERT OR REPLACE INTO refs VALUES (?, ?, ?, ?, ?)", (protocol, task, ref_min, ref_max, json.dumps(detail)))

    def add_reference_episode(self, protocol: str, task: str, policy: str, seed: int, balanced: float) -> None:
        with self._connect() as db:
            db.execute("INSERT OR REPLACE INTO reference_episodes VALUES (?, ?, ?, ?, ?)", (protocol, task, policy, seed, balanced))

    def reference_episodes(self, protocol: str, task: str) -> dict[tuple[str, int], float]:
        """Balanced scores of the reference episodes done so far, by (policy, seed)."""
        with self._connect() as db:
            rows = db.execute("SELECT policy, seed, balanced FROM reference_episodes WHERE protocol=? AND task=?",
                              (protocol, task)).fetchall()
        return {(r["policy"], r["seed"]): r["balanced"] for r in rows}

    def reference(self, protocol: str, task: str) -> dict[str, Any] | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM refs WHERE protocol=? AND task=?", (protocol, task)).fetchone()
        return None if row is None else {"ref_min": row["ref_min"], "ref_max": row["ref_max"], **json.loads(row["detail"])}

    # --- reading ----------------------------------------------------------------------------------

    def submissions(self, protocol: str) -> list[dict[str, Any]]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM submissions WHERE protocol=? ORDER BY name", (protocol,)).fetchall()
        return [{**dict(r), "compute": json.loads(r["compute"]) if r["compute"] else None} for r in rows]

    def episodes(self, protocol: str, name: str | None = None) -> list[dict[str, Any]]:
        query, args = "SELECT * FROM episodes WHERE protocol=?", [protocol]
        if name is not None:
            query, args = query + " AND name=?", args + [name]
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY name, task, seed", args).fetchall()
        return [{**dict(r), "final_feedback": json.loads(r["final_feedback"]), "trace": json.loads(r["trace"])} for r in rows]
