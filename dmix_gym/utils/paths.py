"""Where dmix reads raw data from and where it writes everything it generates."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "DMIX_DATA_DIR"
CACHE_DIR_ENV = "DMIX_CACHE_DIR"


def _shared_data_candidates() -> list[Path]:
    """`../shared/data` seen from the working directory and from the repository."""
    repo = Path(__file__).resolve().parents[2]
    return [Path.cwd().parent / "shared" / "data", repo.parent / "shared" / "data"]


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Raw-data root: explicit > $DMIX_DATA_DIR > ../shared/data when it exists > ~/.cache/dmix/data."""
    if data_dir is not None:
        return Path(data_dir).expanduser().resolve()
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser().resolve()
    for candidate in _shared_data_candidates():
        if candidate.is_dir():
            return candidate.resolve()
    return Path("~/.cache/dmix/data").expanduser()


def resolve_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Root of everything generated: explicit > $DMIX_CACHE_DIR > ~/.cache/dmix."""
    if cache_dir is not None:
        path = Path(cache_dir)
    elif os.environ.get(CACHE_DIR_ENV):
        path = Path(os.environ[CACHE_DIR_ENV])
    else:
        path = Path("~/.cache/dmix")
    return path.expanduser().resolve()
