"""Algorithm 1: valid mixtures, quality rises with N, the diversity term spreads trajectories."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from datasets_builder.trajectories import (
    SamplerConfig,
    choose,
    js_divergence,
    nearest_js,
    plan_episodes,
    sample_trajectories,
)

P0 = np.array([0.4, 0.3, 0.2, 0.1, 0.0, 0.0, 0.0, 0.0])
P_STAR = np.array([0.0, 0.0, 0.0, 0.0, 0.1, 0.2, 0.3, 0.4])


def smoothness(trajectories: np.ndarray) -> float:
    return float(js_divergence(trajectories[:, 1:], trajectories[:, :-1]).mean())


def late_distance(trajectories: np.ndarray) -> float:
    return float(js_divergence(trajectories[:, -1], P_STAR).mean())


@pytest.mark.parametrize("n", [1, 100, 1000])
def test_every_mixture_is_a_distribution(n):
    trajectories = sample_trajectories(P0, P_STAR, steps=6, count=10, n=n, seed=0)
    assert trajectories.shape == (10, 6, 8)
    assert np.all(trajectories >= 0) and np.all(np.isfinite(trajectories))
    assert np.allclose(trajectories.sum(-1), 1.0, atol=1e-6)


def test_more_candidates_give_target_seeking_trajectories():
    low = sample_trajectories(P0, P_STAR, steps=10, count=16, n=1, seed=0)
    high = sample_trajectories(P0, P_STAR, steps=10, count=16, n=1000, seed=0)
    assert late_distance(high) < 0.5 * late_distance(low)


def test_more_candidates_give_smoother_trajectories():
    # Without the drift term (which asks for movement toward p*), the closeness term alone makes steps small.
    config = SamplerConfig(drift=0.0)
    low = sample_trajectories(P0, P_STAR, steps=10, count=16, n=1, config=config, seed=0)
    high = sample_trajectories(P0, P_STAR, steps=10, count=16, n=1000, config=config, seed=0)
    assert smoothness(high) < 0.5 * smoothness(low)


def test_diversity_term_spreads_trajectories():
    def spread(trajectories: np.ndarray) -> float:
        # Mean over trajectories and steps of the JS to the nearest other trajectory at that step.
        return float(np.mean([js_divergence(trajectories[i][None], np.delete(trajectories, i, 0)).min(0).mean()
                              for i in range(len(trajectories))]))

    config = SamplerConfig(wave=1)
    plain = sample_trajectories(P0, P_STAR, steps=8, count=12, n=300, config=replace(config, diversity=0.0), seed=1)
    diverse = sample_trajectories(P0, P_STAR, steps=8, count=12, n=300, config=replace(config, diversity=2.0), seed=1)
    assert spread(diverse) > 1.5 * spread(plain)


def test_hellinger_screen_keeps_the_exact_best():
    # A shortlist of 32 out of 5000 candidates picks what scoring every candidate exactly picks.
    rng = np.random.default_rng(3)
    previous = rng.dirichlet(np.ones(52), size=4)
    p_star = np.concatenate([np.zeros(26), rng.dirichlet(np.ones(26))])
    for progress in (0.1, 0.5, 1.0):
        picks = [choose(previous, p_star, progress, 5000, np.empty((0, 52)), SamplerConfig(shortlist=k),
                        np.random.default_rng(7)) for k in (32, 5000)]
        assert np.array_equal(picks[0], picks[1])


def test_nearest_js_matches_brute_force():
    rng = np.random.default_rng(0)
    candidates, earlier = rng.dirichlet(np.ones(8), 50), rng.dirichlet(np.ones(8) * 0.5, 30)
    brute = js_divergence(candidates[:, None, :], earlier[None, :, :]).min(1)
    assert np.allclose(nearest_js(candidates, earlier, neighbours=30), brute)
    assert np.mean(np.isclose(nearest_js(candidates, earlier), brute)) > 0.9  # two Bhattacharyya neighbours


def test_plan_splits_quality_levels_and_is_deterministic():
    plan = plan_episodes(P0, P_STAR, steps=5, total=10, qualities=(1, 10, 100), seed=3)
    assert [e.quality for e in plan] == [1] * 4 + [10] * 3 + [100] * 3
    assert [e.index for e in plan] == list(range(10))
    assert len({e.seed for e in plan}) == 10
    again = plan_episodes(P0, P_STAR, steps=5, total=10, qualities=(1, 10, 100), seed=3)
    assert all(np.array_equal(a.actions, b.actions) for a, b in zip(plan, again))


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="p_star"):
        sample_trajectories(P0, P_STAR * 2, steps=3, count=1, n=1)
    with pytest.raises(ValueError, match="n=0"):
        sample_trajectories(P0, P_STAR, steps=3, count=1, n=0)
