"""The worker pool: a caller that stops reading its results leaves the queued jobs unstarted."""

from __future__ import annotations

import time
from contextlib import closing
from pathlib import Path

from dmix_gym.utils.pool import run_jobs


def mark_and_wait(folder: str, index: int, seconds: float) -> int:
    Path(folder, f"{index}.started").touch()
    time.sleep(seconds)
    return index


def test_closing_the_results_cancels_the_queued_jobs(tmp_path):
    """As when a BuildMismatch is raised on the first episode: the rest of the queue must not run."""
    jobs = [(str(tmp_path), i, 1.0) for i in range(8)]
    with closing(run_jobs(mark_and_wait, jobs, workers=2, threads=1)) as results:
        next(results)
    assert len(list(tmp_path.glob("*.started"))) < len(jobs)
