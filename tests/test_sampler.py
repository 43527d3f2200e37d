import numpy as np
import pytest

from dmix_gym.sampler import MixtureSampler, allocate, largest_remainder


@pytest.mark.parametrize("p,n", [([0.5, 0.5], 7), ([0.1, 0.2, 0.7], 10), ([1 / 3] * 3, 100), ([0.999, 0.001], 3)])
def test_largest_remainder_sums_and_stays_close(p, n):
    counts = largest_remainder(np.array(p), n)
    assert counts.sum() == n
    assert np.all(np.abs(counts - np.array(p) * n) < 1)


def test_allocate_moves_shortfall_within_field_first():
    counts = allocate(np.array([0.5, 0.5, 0.0, 0.0]), 10, np.array([100, 2, 5, 100]), np.array([0, 0, 1, 1]))
    assert list(counts) == [8, 2, 0, 0]


def test_allocate_moves_to_other_fields_when_a_field_is_dry():
    counts = allocate(np.array([0.0, 0.0, 0.5, 0.5]), 10, np.array([100, 2, 0, 3]), np.array([0, 0, 1, 1]))
    assert counts[3] == 3 and counts.sum() == 10 and counts[2] == 0


def test_draws_without_replacement_and_tracks_fraction_left():
    sampler = MixtureSampler(np.array([10, 6]), np.array([0, 1]), sequences_per_step=4)
    sampler.reset(np.random.default_rng(0))
    seen = set()
    for _ in range(4):
        picks = sampler.draw(sampler.plan(np.array([0.5, 0.5])))
        assert not seen & set(picks)
        seen |= set(picks)
    assert len(seen) == 16
    assert np.allclose(sampler.field_fraction_left(), [0.0, 0.0])
