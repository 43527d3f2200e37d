"""The regression-on-logged-episodes row: fitted on a real (tiny) Minari dataset, no proxy runs, acts by the task's
objective."""

import dataclasses

import numpy as np
import pytest

from baselines.logged_regression import LoggedRegression, LoggedRegressionConfig, logged_episodes
from datasets_builder.collection import collect
from datasets_builder.publish import publish
from dmix_gym.policy import ScenarioInfo
from leaderboard.registry import resolve_policy
from tests.helpers import tiny_scenario


@pytest.fixture(scope="module")
def tiny_dataset(tiny_data, tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINARI_DATASETS_PATH", str(tmp_path_factory.mktemp("minari-regression")))
        folder = collect(tiny_scenario(tiny_data), name="regression", total=12, qualities=(1, 100), workers=1,
                         data_dir=str(tiny_data), progress=False)
        yield publish(folder, overwrite=True).spec.dataset_id, folder


def _space(tiny_data):
    import gymnasium as gym

    env = gym.make("DataMix-v0", scenario=tiny_scenario(tiny_data).to_dict(), data_dir=str(tiny_data), progress=False)
    return ScenarioInfo.from_env(env)


def test_the_fit_reads_every_logged_episode_and_the_objective_steers_the_mixture(tiny_dataset, tiny_data):
    ident, _ = tiny_dataset  # published under the fixture's MINARI_DATASETS_PATH, which holds while it lives
    data = logged_episodes((ident,))
    assert data.mixtures.shape[0] == 12 and np.allclose(data.mixtures.sum(1), 1.0)
    info = _space(tiny_data)
    source = np.asarray(info.domain_space.field_of) == 0
    shares = {}
    for name, weights in (("source", (1.0, 0.0)), ("target", (0.0, 1.0))):
        policy = LoggedRegression(LoggedRegressionConfig(datasets=(ident,), search_samples=4000, top_k=20))
        policy.reset(dataclasses.replace(info, scenario={**info.scenario, "reward_weights": list(weights)}))
        assert np.isclose(policy.act(None).sum(), 1.0) and np.all(policy.act(None) >= 0)
        shares[name] = 1.0 - policy.mixture[source].sum()
    assert shares["target"] > shares["source"] + 0.2  # rewarding the target field buys it more data


def test_it_is_a_built_in_baseline_with_a_fingerprint():
    policy, fingerprint = resolve_policy("baseline:logged-regression")
    assert isinstance(policy, LoggedRegression) and fingerprint.startswith("builtin:baseline:logged-regression:")


def test_a_saved_configuration_names_its_datasets_and_loads_as_the_frozen_config():
    """v3's row is a saved policy file over more datasets than the default; its JSON list comes back a tuple."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "policies" / "logged-regression-v3.json"
    policy, fingerprint = resolve_policy(str(path))
    assert isinstance(policy, LoggedRegression) and fingerprint.startswith("file:")
    assert policy.config.datasets[-1] == "dmix/general-math-cpu/domain-space-v1"
    assert policy.config == dataclasses.replace(LoggedRegressionConfig(), datasets=policy.config.datasets)
    hash(policy.config)  # a frozen config again, not one holding a list
