"""The start state estimated from the model's own samples (paper App. B)."""

import gymnasium as gym
import numpy as np
import pytest

from dmix_gym.errors import ConfigError
from dmix_gym.start_state import classify, domain_log_probs, estimate_start, kl_divergence, sample_texts
from tests.helpers import tiny_scenario


@pytest.fixture(scope="module")
def env(tiny_data, tmp_path_factory):
    # Module-scoped, so built before the per-test private cache is set: give it a cache of its own.
    return gym.make("DataMix-v0", scenario=tiny_scenario(tiny_data).to_dict(), data_dir=str(tiny_data), progress=False,
                    start="estimated", start_samples=32, cache_dir=str(tmp_path_factory.mktemp("cache"))).unwrapped


def test_the_estimate_approaches_p0_as_samples_grow(env):
    # Texts drawn from the corpus itself, domain by p0: what a model that had learnt its corpus perfectly would write.
    shards, space = env.shards, env.domain_space
    source = [d for d in range(space.size) if space.field_of[d] == 0]
    p0 = np.asarray(space.p0)[source]
    log_probs = domain_log_probs(shards, int(shards.manifest["tokenizer"]["vocab_size"]))
    kl = {}
    for n in (8, 512):
        values = []
        for seed in range(3):
            rng = np.random.default_rng(seed)
            domains = rng.choice(len(source), size=n, p=p0)
            texts = [shards.sequence(source[d], rng.integers(shards.train_sequences(source[d]))) for d in domains]
            estimate = np.bincount(classify(texts, log_probs), minlength=len(source)) / n
            values.append(kl_divergence(p0, estimate))
        kl[n] = np.mean(values)
    assert kl[512] < kl[8] and kl[512] < 0.01


def test_an_env_can_start_from_the_estimate(env):
    estimate = env.start_estimate
    p0 = np.asarray(estimate["p0"])
    assert np.isclose(p0.sum(), 1) and np.all(p0[np.asarray(env.domain_space.field_of) != 0] == 0)
    assert estimate["samples"] == 32 and np.isfinite(estimate["kl"])
    obs, _ = env.reset(seed=0)
    assert np.allclose(obs[: env.num_domains], p0)


def test_bad_inputs_are_clear_errors(env, tiny_data):
    with pytest.raises(ConfigError, match="must be positive"):
        sample_texts(env.backend.model, 0, 4, 0, seed=0)
    small = type("Model", (), {"config": type("Config", (), {"vocab_size": 8})()})()
    with pytest.raises(ConfigError, match="vocabulary of 8 tokens"):
        estimate_start(small, env.shards, 4)
    with pytest.raises(ConfigError, match="start must be 'corpus' or 'estimated'"):
        gym.make("DataMix-v0", scenario=tiny_scenario(tiny_data).to_dict(), data_dir=str(tiny_data), progress=False,
                 start="sampled")
