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


def test_a_scarce_target_corpus_is_the_same_first_sequences_of_each_target_domain():
    from dmix_gym.sampler import available_sequences

    assert list(available_sequences(np.array([1000, 800, 500, 30]), np.array([0, 0, 1, 1]), 0.01)) == [1000, 800, 5, 1]
    assert list(available_sequences(np.array([1000, 500]), np.array([0, 1]), 1.0)) == [1000, 500]


def test_repeat_reads_a_used_up_domain_again_in_a_new_order_and_counts_epochs():
    sampler = MixtureSampler(np.array([50, 3]), np.array([0, 1]), sequences_per_step=4, repeat=True)
    sampler.reset(np.random.default_rng(0))
    drawn = [sampler.draw(sampler.plan(np.array([0.0, 1.0]))) for _ in range(3)]  # 12 sequences of a 3-sequence domain
    indices = [i for step in drawn for _, i in step]
    assert sorted(indices[:3]) == [0, 1, 2] and sorted(indices[3:6]) == [0, 1, 2]  # each pass reads every sequence once
    assert np.allclose(sampler.epochs(), [0.0, 4.0]) and np.allclose(sampler.field_fraction_left(), [1.0, 0.0])
    again = MixtureSampler(np.array([50, 3]), np.array([0, 1]), sequences_per_step=4, repeat=True)
    again.reset(np.random.default_rng(0))
    assert [again.draw(again.plan(np.array([0.0, 1.0]))) for _ in range(3)] == drawn  # a function of the seed


def test_without_repeat_the_random_stream_is_as_before():
    """Episodes that do not repeat draw nothing more from the episode's stream than one permutation per domain, so
    they keep the data order every earlier result was measured with."""
    rng = np.random.default_rng(3)
    MixtureSampler(np.array([10, 6]), np.array([0, 1]), 4).reset(rng)
    expected = np.random.default_rng(3)
    expected.permutation(10), expected.permutation(6)
    assert rng.integers(1000) == expected.integers(1000)
