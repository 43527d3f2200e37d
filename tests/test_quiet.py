"""Default output carries no third-party banners, and tables keep whole headers when piped."""

import os
import subprocess
import sys


def run(code_or_args: list[str], tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DMIX_CACHE_DIR": str(tmp_path)}
    env.pop("COLUMNS", None)
    return subprocess.run([sys.executable, *code_or_args], capture_output=True, text=True, env=env, timeout=300)


def test_importing_the_offline_rl_agents_prints_nothing(tmp_path):
    done = run(["-c", "import agents.offline_rl"], tmp_path)
    assert done.returncode == 0 and done.stderr == "" and done.stdout == ""


def test_piped_tables_keep_whole_column_names(tmp_path):
    done = run(["-m", "dmix", "leaderboard", "show", "--protocol", "dmix-bench-smoke-v1"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "unseen-target" in done.stdout and "submission" in done.stdout and "…" not in done.stdout
