"""`@lasting` makes a scarce target corpus last the episode, by the env's own sampler, and changes nothing where the
corpus is ample or is read again."""

from __future__ import annotations

import json

import numpy as np
import pytest

from baselines.domains import DomainMixture
from baselines.lasting import Lasting, cap_target_shares, sequences_read
from dmix_gym.data.domains import DomainSpace
from dmix_gym.policy import History, ScenarioInfo
from dmix_gym.sampler import MixtureSampler, steps_lasted
from dmix_gym.scenario import make_scenario
from leaderboard.registry import load_policy, resolve_policy

SPACE = DomainSpace(
    names=("general/a", "general/b", "general/c", "math/w", "math/x", "math/y", "math/z"),
    field_of=(0, 0, 0, 1, 1, 1, 1), fields=("general", "math"), target_fields=("math",),
    p0=(0.5, 0.3, 0.2, 0, 0, 0, 0), p_star=(0, 0, 0, 0.3, 0.1, 0.4, 0.2),
)
SCARCE = (10**6, 10**6, 10**6, 80, 4, 100, 62)  # a 246-sequence target slice, one domain of 4
MIXTURE = "domains:source/a=0.4,source/b=0.3,source/c=0.11,target/w=0.15,target/y=0.04"  # 0.19 target


def info(on_exhausted: str = "terminate", steps: int = 20) -> ScenarioInfo:
    scenario = make_scenario("general-math", "cpu", on_exhausted=on_exhausted, max_steps=steps)
    return ScenarioInfo(json.loads(scenario.to_json()), SPACE, steps)


def play(policy, scenario: ScenarioInfo, totals) -> tuple[int, np.ndarray]:
    """(steps before a target field is used up, or all of them; the mixtures played), through the env's sampler and
    its observation layout (mixture, feedback, time, data left)."""
    sampler = MixtureSampler(totals, SPACE.field_of, scenario.sequences_per_step, repeat=not scenario.target_runs_out)
    sampler.reset(np.random.default_rng(0))
    policy.reset(scenario)
    history, played = History(), []

    def observe(p, t):
        history.append(np.concatenate([p, np.zeros(2), [t / scenario.max_steps], sampler.field_fraction_left()[1:]]), {})

    observe(np.asarray(SPACE.p0, float), 0)
    for t in range(1, scenario.max_steps + 1):
        p = policy.act(history)
        sampler.used += sampler.plan(p)
        played.append(p)
        observe(p, t)
        if not sampler.repeat and sampler.field_fraction_left()[1] == 0 and t < scenario.max_steps:
            return t, np.array(played)
    return scenario.max_steps, np.array(played)


def target_share(mixtures: np.ndarray) -> np.ndarray:
    return mixtures[:, np.asarray(SPACE.field_of) == 1].sum(axis=1)


def test_a_mixture_that_runs_a_scarce_corpus_out_lasts_the_episode_when_lasting():
    scenario = info()
    steps, plain = play(DomainMixture(MIXTURE), scenario, SCARCE)
    sampler = MixtureSampler(SCARCE, SPACE.field_of, scenario.sequences_per_step)
    assert steps == steps_lasted(sampler, plain[0], 20) < 20  # the env's own rule ends it early
    steps, mixtures = play(Lasting(DomainMixture(MIXTURE)), scenario, SCARCE)
    assert steps == 20
    shares = target_share(mixtures)
    assert shares[0] == pytest.approx(0.19)  # nothing to estimate from before the first step
    assert np.all(shares[1:] < 0.19) and np.all(shares[1:] > 0.05)  # it spreads the slice, it does not drop it
    sources = mixtures[1:, :3] / mixtures[1:, :3].sum(axis=1, keepdims=True)
    np.testing.assert_allclose(sources, np.tile([0.4, 0.3, 0.11], (19, 1)) / 0.81)  # the source keeps its split


@pytest.mark.parametrize("on_exhausted, totals", [("terminate", (10**6,) * 7), ("repeat", SCARCE)])
def test_lasting_plays_the_policy_unchanged_where_the_corpus_is_ample_or_read_again(on_exhausted, totals):
    scenario = info(on_exhausted)
    _, plain = play(DomainMixture(MIXTURE), scenario, totals)
    _, lasting = play(Lasting(DomainMixture(MIXTURE)), scenario, totals)
    np.testing.assert_allclose(lasting, plain)


def test_the_corpus_size_is_read_back_from_the_data_left():
    shares = np.array([[0.19], [0.19]])
    left = np.array([[1.0], [1 - 24 / 246], [1 - 48 / 246]])  # 24 sequences a step of 128 at 0.19 (largest remainder)
    total, now = sequences_read(shares, left, 128)
    assert total[0] == 246 and now[0] == 198
    unread = sequences_read(np.zeros((1, 1)), np.ones((2, 1)), 128)[0]
    assert np.isnan(unread[0])


def test_a_capped_share_goes_to_the_source_in_its_own_proportions_or_p0s():
    field_of = np.asarray(SPACE.field_of)
    p = np.array([0.2, 0.2, 0.0, 0.3, 0.3, 0.0, 0.0])
    capped = cap_target_shares(p, field_of, np.array([0.3]), np.asarray(SPACE.p0))
    np.testing.assert_allclose(capped, [0.35, 0.35, 0.0, 0.15, 0.15, 0.0, 0.0])
    naive = cap_target_shares(np.array([0, 0, 0, 0.5, 0.5, 0, 0.0]), field_of, np.array([0.2]), np.asarray(SPACE.p0))
    np.testing.assert_allclose(naive, [0.4, 0.24, 0.16, 0.1, 0.1, 0, 0])
    np.testing.assert_allclose(cap_target_shares(p, field_of, np.array([np.nan]), np.asarray(SPACE.p0)), p)


def test_lasting_is_a_spec_suffix_with_its_own_fingerprint():
    policy, fingerprint = resolve_policy(f"{MIXTURE}@lasting")
    _, inner = resolve_policy(MIXTURE)
    assert isinstance(policy, Lasting) and fingerprint.startswith(inner) and fingerprint != inner
    assert isinstance(load_policy("baseline:uniform@lasting"), Lasting)
