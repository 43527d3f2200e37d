"""Finished training is kept: a run asked for again with the settings it finished with is read back, not retrained.

Every trainer writes its metrics file last, with the settings it ran with. A folder restored from the committed
store of trained agents (`benchmarks/agents_store.py`) holds those files and the saved agents, but no resumable
checkpoint: a fresh machine would otherwise spend hours training the same weights again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def finished_metrics(metrics_file: Path, settings: dict[str, Any], outputs: list[Path]) -> dict[str, Any] | None:
    """The metrics of the run that finished in `metrics_file`'s folder with these `settings`, where every one of its
    `outputs` is there; None where any is missing or the run had other settings (the caller trains)."""
    if not metrics_file.is_file() or not all(path.is_file() for path in outputs):
        return None
    metrics = json.loads(metrics_file.read_text())
    recorded = {key: metrics.get(key) for key in settings}
    return metrics if recorded == json.loads(json.dumps(settings)) else None
