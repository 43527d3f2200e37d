"""Baselines: Naive, Uniform, Start-state, DBL and RegMix behave as defined and always act on the simplex."""

from __future__ import annotations

import numpy as np
import pytest

from baselines import BASELINES, make_baseline
from baselines.dbl import DBL, DBLConfig, balanced_start, dbl_update, field_losses, reference_losses
from baselines.regmix import RegMix, RegMixConfig, cross_validated_r2, make_regressor, sample_mixtures, search_optimum, token_prior
from baselines.static import StaticPolicy
from dmix_gym.data.domains import DomainSpace
from dmix_gym.policy import History, ScenarioInfo, rollout
from tests.helpers import tiny_scenario

SPACE = DomainSpace(
    names=("general/a", "general/b", "general/c", "math/x", "math/y"),
    field_of=(0, 0, 0, 1, 1), fields=("general", "math"), target_fields=("math",),
    p0=(0.5, 0.3, 0.2, 0.0, 0.0), p_star=(0.0, 0.0, 0.0, 0.75, 0.25),
)
INFO = ScenarioInfo({"data": {"name": "t", "preset": {"name": "smoke"}}}, SPACE, 4)


def test_naive_puts_no_weight_on_source_domains():
    policy = StaticPolicy("naive")
    policy.reset(INFO)
    p = policy.act(History())
    assert np.all(p[:3] == 0) and np.allclose(p[3:], [0.75, 0.25])


def test_uniform_and_start_state():
    uniform, start = StaticPolicy("uniform"), StaticPolicy("start-state")
    uniform.reset(INFO)
    start.reset(INFO)
    assert np.allclose(uniform.act(History()), 0.2)
    assert np.allclose(start.act(History()), SPACE.p0)
    with pytest.raises(ValueError, match="unknown static baseline"):
        StaticPolicy("greedy")


def test_unknown_baseline_is_named():
    with pytest.raises(ValueError, match="baseline:naive"):
        make_baseline("baseline:oracle")


def test_dbl_raises_the_weight_of_a_domain_whose_loss_rises():
    w = np.full(5, 0.2)
    reference = np.full(5, 3.0)
    losses = np.array([3.0, 2.5, 3.0, 3.4, 3.0])  # domain 3 exceeds its reference; domain 1 is below it
    new = dbl_update(w, losses, reference, eta=1.0)
    assert np.isclose(new.sum(), 1) and np.argmax(new) == 3
    assert np.isclose(new[1], new[0])  # below-reference losses change nothing (max(., 0))


def test_dbl_policy_follows_planted_losses_at_field_level():
    policy = DBL(DBLConfig(eta=2.0, level="field"))
    key_info = INFO
    policy.references = {}
    from dmix_gym.utils.atomic import stable_hash

    base_loss, naive_loss = np.array([3.0, 3.0, 3.0, 6.0, 6.0]), np.array([5.0, 5.0, 5.0, 2.0, 2.0])
    reference = reference_losses(base_loss, naive_loss, SPACE)
    assert np.allclose(reference, [3, 3, 3, 2, 2])
    policy.references[stable_hash({"scenario": key_info.scenario, "seed": 0, "version": 1})] = reference
    policy.loss_space = SPACE  # what prepare(env) records
    policy.reset(key_info)
    history = History()
    history.append(np.zeros(9), {"domain_loss": base_loss})
    first = policy.act(history)
    assert np.allclose(first, balanced_start(SPACE))
    # The general field's loss rises above the base model's while math is at its reference: general gains weight.
    shares = []
    for rise in (0.2, 0.4, 0.6):
        history.append(np.zeros(9), {"domain_loss": np.array([3 + rise] * 3 + [2.0, 2.0])})
        p = policy.act(history)
        assert np.all(p >= 0) and np.isclose(p.sum(), 1)
        shares.append(p[:3].sum())
    assert shares[0] > 0.5 and shares[0] < shares[1] < shares[2]
    assert np.allclose(field_losses(np.array([1, 1, 1, 4, 4.0]), SPACE), [1, 4])


def test_dbl_needs_its_references():
    with pytest.raises(RuntimeError, match="prepare"):
        DBL().reset(INFO)


def test_regmix_samples_are_valid_and_span_sparse_to_dense():
    rng = np.random.default_rng(0)
    prior = token_prior(np.array([100, 50, 25, 300, 10]), 0.5)
    x = sample_mixtures(prior, 2000, rng)
    assert np.all(x >= 0) and np.allclose(x.sum(1), 1)
    assert np.isclose(prior.sum(), 1) and prior.argmax() == 3
    entropy = -(x * np.log(np.maximum(x, 1e-12))).sum(1)
    assert entropy.min() < 0.5 and entropy.max() > 1.4


def test_regmix_regression_recovers_a_planted_optimum():
    rng = np.random.default_rng(0)
    prior = np.full(5, 0.2)
    optimum = np.array([0.1, 0.1, 0.1, 0.5, 0.2])
    x = sample_mixtures(prior, 256, rng)
    y = -np.sum((x - optimum) ** 2, axis=1) + rng.normal(0, 1e-3, len(x))
    for kind in ("lightgbm", "linear"):
        assert cross_validated_r2(kind, x, y, folds=4) > (0.6 if kind == "lightgbm" else -1.0)
    model = make_regressor("lightgbm").fit(x, y)
    found = search_optimum(model, prior, 20_000, 50, rng)
    assert np.all(found >= 0) and np.isclose(found.sum(), 1)
    assert np.abs(found - optimum).sum() < 0.5 * np.abs(prior - optimum).sum()


def test_every_baseline_acts_on_the_simplex_in_the_env(tiny_data):
    import gymnasium as gym

    env = gym.make("DataMix-v0", scenario=tiny_scenario(tiny_data).to_dict(), data_dir=str(tiny_data), progress=False)
    regmix = RegMix(RegMixConfig(runs=6, proxy_steps=1, workers=1, search_samples=2000, top_k=20, folds=3))
    for name in BASELINES:
        policy = regmix if name == "regmix" else make_baseline(name)
        episode = rollout(policy, env, seed=0)  # rollout() checks every action is a distribution
        assert np.allclose(episode.mixtures.sum(1), 1) and np.all(episode.mixtures >= 0), name
        assert len(episode.rewards) >= 1
        if name == "naive":
            source = np.asarray(env.unwrapped.domain_space.field_of) == 0
            assert np.all(episode.mixtures[1:, source] == 0)
    fit = regmix.fit
    assert fit["compute"]["proxy_runs"] == 6 and fit["compute"]["tokens"] > 0
    assert set(fit["r2"]) == {"lightgbm", "linear"}
    # A second RegMix reads the cached fit instead of re-running its proxies.
    again = RegMix(RegMixConfig(runs=6, proxy_steps=1, workers=1, search_samples=2000, top_k=20, folds=3))
    again.prepare(env, progress=False)
    again.reset(ScenarioInfo.from_env(env))
    assert np.allclose(again.mixture, regmix.mixture)


def test_baselines_act_in_the_source_based_space(tiny_data):
    import gymnasium as gym

    from dmix_gym import CollapseDomains

    env = CollapseDomains(gym.make("DataMix-v0", scenario=tiny_scenario(tiny_data).to_dict(), data_dir=str(tiny_data),
                                   progress=False), to="source")
    regmix = RegMix(RegMixConfig(runs=6, proxy_steps=1, workers=1, search_samples=2000, top_k=20, folds=3))
    for policy in (regmix, make_baseline("dbl"), make_baseline("random"), make_baseline("naive")):
        episode = rollout(policy, env, seed=1)
        assert episode.mixtures.shape[1] == 2 and np.allclose(episode.mixtures.sum(1), 1), policy.name
    assert np.allclose(regmix.mixture.sum(), 1) and regmix.mixture.shape == (2,)
