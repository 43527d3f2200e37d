"""Where dmix reads raw data from and where it writes everything it generates."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

DATA_DIR_ENV = "DMIX_DATA_DIR"
CACHE_DIR_ENV = "DMIX_CACHE_DIR"
STAGING_DIR_ENV = "DMIX_STAGING_DIR"


def builtin_data_dir() -> Path:
    """The real corpora and eval sets the built-in scenarios read, shipped inside the package (see its README.md)."""
    root = resources.files("dmix_gym.data") / "builtin"
    if not isinstance(root, Path):  # a zipped install: package data has no path of its own
        raise RuntimeError(f"dmix's built-in data is not on the file system ({root}); install dmix unzipped")
    return root


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Raw-data root: explicit > $DMIX_DATA_DIR > the data shipped in the package."""
    if data_dir is not None:
        return Path(data_dir).expanduser().resolve()
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser().resolve()
    return builtin_data_dir()


def resolve_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Root of everything generated: explicit > $DMIX_CACHE_DIR > ~/.cache/dmix."""
    if cache_dir is not None:
        path = Path(cache_dir)
    elif os.environ.get(CACHE_DIR_ENV):
        path = Path(os.environ[CACHE_DIR_ENV])
    else:
        path = Path("~/.cache/dmix")
    return path.expanduser().resolve()


def resolve_staging_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where staged episodes (collections, baselines' proxy runs) go: $DMIX_STAGING_DIR > <cache>/staging.

    A long job that must survive a move to another machine points it into a repository and commits it.
    """
    if os.environ.get(STAGING_DIR_ENV):
        return Path(os.environ[STAGING_DIR_ENV]).expanduser().resolve()
    return resolve_cache_dir(cache_dir) / "staging"
