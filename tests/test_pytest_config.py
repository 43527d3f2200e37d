"""The README's `pytest` works as a bare command, not only as `python -m pytest`."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_bare_pytest_imports_the_test_helpers():
    # `-P` keeps the working directory off sys.path, as the `pytest` script does.
    command = [sys.executable, "-P", "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests/test_sampler.py"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
