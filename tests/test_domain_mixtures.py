"""Domain mixtures written by role and domain name: parsing, resolving in a domain space, transfer to another one."""

import numpy as np
import pytest

from baselines.domains import DomainMixture, DomainSchedule, domain_spec, parse_domain_weights, resolve_domain_weights
from dmix_gym.data.domains import DomainSpace
from dmix_gym.errors import ConfigError
from dmix_gym.policy import ScenarioInfo
from leaderboard.registry import resolve_policy

MATH = DomainSpace(("general/a", "general/b", "math/x", "math/y"), (0, 0, 1, 1), ("general", "math"), ("math",),
                   (0.75, 0.25, 0.0, 0.0), (0.0, 0.0, 0.6, 0.4))
CODE = DomainSpace(("news/a", "news/c", "code/z"), (0, 0, 1), ("news", "code"), ("code",),
                   (0.5, 0.5, 0.0), (0.0, 0.0, 1.0))


def test_a_role_spreads_naturally_and_a_named_domain_takes_its_weight():
    weights = parse_domain_weights("domains:source=0.8,target/y=0.2")
    np.testing.assert_allclose(resolve_domain_weights(weights, MATH), [0.6, 0.2, 0.0, 0.2])
    np.testing.assert_allclose(resolve_domain_weights({"source": 1, "target": 1}, MATH), [0.375, 0.125, 0.3, 0.2])


def test_a_domain_the_space_lacks_falls_back_to_its_roles_natural_split():
    weights = parse_domain_weights("source/a=0.4,source/b=0.4,target/y=0.2")
    np.testing.assert_allclose(resolve_domain_weights(weights, CODE), [0.4 + 0.2, 0.2, 0.2])  # b: news's p0; y: code


def test_the_policy_acts_its_mixture_and_its_spec_round_trips_through_the_registry():
    policy, fingerprint = resolve_policy("domains:source=0.85,target/x=0.15")
    assert fingerprint.startswith("builtin:domains:") and policy.name == "domains:source=0.85,target/x=0.15"
    policy.reset(ScenarioInfo({}, MATH, 3))
    np.testing.assert_allclose(policy.act(None), [0.6375, 0.2125, 0.15, 0.0])
    assert DomainMixture(parse_domain_weights(policy.name)).name == policy.name
    assert domain_spec({"source": 0.5, "target/x": 0.0, "target/y": 0.5}) == "domains:source=0.5,target/y=0.5"


@pytest.mark.parametrize("bad", ["domains:", "domains:general=1", "domains:source=-1", "domains:source=x",
                                 "domains:source=0", "domains:source=1,source=2", "domains:target/a/b=1"])
def test_a_bad_spec_is_one_clear_error(bad):
    with pytest.raises(ConfigError, match="domain|twice|weight"):
        resolve_policy(bad)


def test_a_domain_schedule_keeps_each_roles_split_and_moves_the_target_share_through_its_knots():
    policy, _ = resolve_policy("domains:source/a=0.85,target/y=0.15;target-share=0.4,0.1")
    assert isinstance(policy, DomainSchedule) and policy.knots == (0.4, 0.1)
    policy.reset(ScenarioInfo({}, MATH, 4))
    history = [None]  # step 1 of 4: progress 0
    np.testing.assert_allclose(policy.act(history), [0.6, 0.0, 0.0, 0.4])  # share 0.4, all source on a
    assert policy.act([None] * 4)[3] == pytest.approx(0.1)  # step 4: the last knot
    np.testing.assert_allclose(policy.act([None] * 3)[:2], [0.8, 0.0])  # step 3 of 4: share 0.2, all source on a
    assert DomainSchedule(policy.name).name == policy.name  # the spec round-trips


def test_a_domain_schedule_whose_spec_gives_a_role_nothing_spreads_that_role_naturally():
    policy = DomainSchedule("domains:target/x=1;target-share=0.5")
    policy.reset(ScenarioInfo({}, MATH, 2))
    np.testing.assert_allclose(policy.act([None]), [0.375, 0.125, 0.5, 0.0])


@pytest.mark.parametrize("bad", ["domains:source=1;target-share=", "domains:source=1;target-share=1.5",
                                 "domains:source=1;target-share=a,b", "domains:source=1;target-share=0.2;target-share=0.3"])
def test_a_bad_domain_schedule_is_one_clear_error(bad):
    with pytest.raises(ConfigError, match="target share|knots|domain"):
        resolve_policy(bad)


def test_a_per_field_policy_with_within_field_splits_keeps_its_shares_and_the_specs_split(tiny_data):
    import gymnasium as gym

    from baselines.domains import WithinFieldSplits, local_names, role_of_domains
    from dmix_gym.data.domains import source_space
    from dmix_gym.policy import Policy, adapt_env, rollout
    from tests.helpers import tiny_scenario

    class Shares(Policy):
        """A policy of the per-field space: 0.7 source, 0.3 target."""

        name = "shares"

        def __init__(self, space):
            self.domain_space = space

        def act(self, history):
            return np.array([0.7, 0.3])

    env = gym.make("DataMix-v0", scenario=tiny_scenario(tiny_data).to_dict(), data_dir=str(tiny_data), progress=False)
    space = env.unwrapped.domain_space
    roles, names = role_of_domains(space), np.asarray(local_names(space))
    target = names[roles == "target"][-1]
    at = np.flatnonzero((names == target) & (roles == "target"))[0]

    def carried(policy) -> np.ndarray:  # the fine mixture the env gets for the per-field action [0.7, 0.3]
        view = adapt_env(env, policy)
        return view.env.action(view.action(np.array([0.7, 0.3])))

    source = roles == "source"
    plain = carried(Shares(source_space(space)))
    policy = WithinFieldSplits(Shares(source_space(space)), f"domains:source=1,target/{target}=1")
    split = carried(policy)
    for mixture in (plain, split):  # the per-field shares hold either way, the source spread like p0
        assert mixture[source].sum() == pytest.approx(0.7) and mixture[~source].sum() == pytest.approx(0.3)
        np.testing.assert_allclose(mixture[source] / 0.7, np.asarray(space.p0)[source] / sum(space.p0))
    np.testing.assert_allclose(plain[~source] / 0.3, np.asarray(space.p_star)[~source] / sum(space.p_star))  # p*'s
    assert split[at] == pytest.approx(0.3)  # the spec's: all of the target share on one domain
    # end to end: what the env drew at the first step (later ones borrow once the tiny domain's data runs out)
    drawn = rollout(policy, env, seed=0).infos["mixture"][1]
    assert np.all(drawn[~source & (np.arange(space.size) != at)] == 0) and drawn[at] > 0
    assert policy.name.startswith("shares@domains:")
    with pytest.raises(ConfigError, match="fixed domain space"):
        WithinFieldSplits(DomainMixture("domains:source=1"), "domains:source=1")


def test_any_policy_spec_takes_within_field_splits_in_the_registry():
    from baselines.domains import WithinFieldSplits
    from leaderboard.registry import load_policy

    spec = "official:dmix-bench-v2/iql@domains:source=0.85,target/c01-frac-boxed=0.15"
    policy, fingerprint = resolve_policy(spec)
    assert isinstance(policy, WithinFieldSplits) and isinstance(load_policy(spec), WithinFieldSplits)
    assert fingerprint.startswith("file:") and fingerprint.endswith("@domains:source=0.85,target/c01-frac-boxed=0.15")
    assert policy.domain_space == policy.inner.domain_space
    with pytest.raises(ConfigError, match="fixed domain space"):  # a baseline adapts to any space by itself
        resolve_policy("baseline:uniform@domains:source=1")
