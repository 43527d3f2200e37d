"""What a user got wrong (a name, a value, a file), said in one line.

The `dmix` command prints a `DmixError` as `dmix: error: <message>` and exits with status 2, with
no traceback (`dmix --debug ...` or `DMIX_DEBUG=1` shows it). Any other exception is a bug in dmix
and keeps its traceback. Each class also derives from the built-in error it refines, so code that
catches `ValueError` or `FileNotFoundError` keeps working.
"""

from __future__ import annotations


class DmixError(Exception):
    """A user error: its message names the bad value or file and says what would work."""


class ConfigError(DmixError, ValueError):
    """An unknown name (scenario, preset, policy, baseline, protocol, dataset) or a malformed setting."""


class MissingFileError(DmixError, FileNotFoundError):
    """A file or folder the run needs is not there."""


def user_error(error: BaseException) -> DmixError | None:
    """The user error behind `error` (itself, or one it was raised from, e.g. inside a worker), if any."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, DmixError):
            return error
        seen.add(id(error))
        error = getattr(error, "error", None) or error.__cause__
    return None
