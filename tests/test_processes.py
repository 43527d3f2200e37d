"""kill_tree ends what a process started even in another session (as torchrun starts its ranks)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from dmix_gym.utils.processes import descendants, kill_tree

LAUNCHER = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
print(child.pid, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_kill_tree_ends_a_child_in_a_session_of_its_own():
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER], stdout=subprocess.PIPE, text=True, start_new_session=True)
    missed = int(launcher.stdout.readline())
    try:
        assert descendants(launcher.pid) == [launcher.pid, missed]
        os.killpg(launcher.pid, signal.SIGKILL)  # a group kill misses the child's own session
        launcher.wait()
        time.sleep(0.2)
        assert _alive(missed)
        launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER], stdout=subprocess.PIPE, text=True, start_new_session=True)
        child = int(launcher.stdout.readline())
        kill_tree(launcher.pid)
        launcher.wait()
        for _ in range(50):
            if not _alive(child):
                break
            time.sleep(0.1)
        assert not _alive(child)
    finally:
        try:
            os.kill(missed, signal.SIGKILL)
        except ProcessLookupError:
            pass
