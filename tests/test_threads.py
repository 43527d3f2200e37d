"""An episode runs with a fixed torch thread count, whatever the process, the worker count or the machine has.

More threads sum a matmul's partial products in another order; on an AVX-512 Xeon that moved a leaderboard score by
1.4e-3 between `--workers 1` and `--workers 2`. These tests check the mechanism (what thread count the work sees),
which fails without the pinning on any machine, and then that the scores agree.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dmix_gym.backend import ProxyBackend
from dmix_gym.env import DataMixEnv
from dmix_gym.errors import ConfigError
from dmix_gym.policy import Policy
from dmix_gym.utils.threads import torch_threads
from leaderboard.episodes import run_episodes
from leaderboard.protocol import Objective, Task
from tests.helpers import tiny_scenario

OBJECTIVE = Objective(mean=(-5.0, -5.0), std=(1.0, 1.0))


class RecordingBackend(ProxyBackend):
    """The env's own backend, noting the thread count each piece of its work ran with."""

    seen: list[tuple[str, int]] = []

    def __init__(self, *args, **kwargs):
        RecordingBackend.seen.append(("build", torch.get_num_threads()))
        super().__init__(*args, **kwargs)

    def train_on(self, tokens):
        RecordingBackend.seen.append(("train", torch.get_num_threads()))
        return super().train_on(tokens)

    def evaluate(self, evalset):
        RecordingBackend.seen.append(("evaluate", torch.get_num_threads()))
        return super().evaluate(evalset)


def test_the_env_builds_trains_and_evaluates_with_its_threads_and_restores_the_processs(tiny_data):
    RecordingBackend.seen = []
    with torch_threads(2):
        env = DataMixEnv(tiny_scenario(tiny_data), None, data_dir=str(tiny_data), progress=False, backend=RecordingBackend)
        env.reset(seed=0)
        env.step(env.p0)
        assert torch.get_num_threads() == 2  # the process's own setting is back after every call
    kinds = {kind for kind, _ in RecordingBackend.seen}
    assert kinds == {"build", "train", "evaluate"}
    assert {threads for _, threads in RecordingBackend.seen} == {1}


def test_threads_none_leaves_the_processs_setting_and_a_bad_count_is_refused(tiny_data):
    RecordingBackend.seen = []
    with torch_threads(2):
        env = DataMixEnv(tiny_scenario(tiny_data), None, data_dir=str(tiny_data), progress=False, backend=RecordingBackend,
                         threads=None)
        env.reset(seed=0)
    assert {threads for _, threads in RecordingBackend.seen} == {2}
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="threads must be a positive integer"):
            DataMixEnv(tiny_scenario(tiny_data), None, data_dir=str(tiny_data), progress=False, threads=bad)


class ThreadCountingPolicy(Policy):
    """Plays p0 and notes the thread count it acted with (an agent's forward pass is part of the episode too)."""

    name = "thread-counting"
    seen: list[int] = []

    def act(self, history):
        ThreadCountingPolicy.seen.append(torch.get_num_threads())
        return np.asarray(self.info.domain_space.p0)


def test_a_leaderboard_episode_and_its_policy_run_with_the_tasks_threads_in_this_process(tiny_data):
    ThreadCountingPolicy.seen = []
    task = Task("t", tiny_scenario(tiny_data).to_json(), "smoke", (0,))
    with torch_threads(2):
        records = dict(run_episodes([(ThreadCountingPolicy(), task, 0)], OBJECTIVE, {}, workers=1,
                                    data_dir=str(tiny_data), vector=0))
        assert torch.get_num_threads() == 2
    assert ThreadCountingPolicy.seen and set(ThreadCountingPolicy.seen) == {task.threads} == {1}
    assert np.isfinite(records[0]["balanced"])


def test_an_episode_scores_the_same_whatever_threads_the_process_has(tiny_data):
    task = Task("t", tiny_scenario(tiny_data).to_json(), "smoke", (0,))
    scores = []
    for threads in (1, 2):
        with torch_threads(threads):
            scores.append(dict(run_episodes([(ThreadCountingPolicy(), task, 7)], OBJECTIVE, {}, workers=1,
                                            data_dir=str(tiny_data), vector=0))[0]["balanced"])
    assert abs(scores[0] - scores[1]) <= 1e-9
