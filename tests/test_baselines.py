"""Baselines behave as their papers define them (on planted losses) and always act on the simplex in the env."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from baselines import BASELINES, make_baseline
from baselines.aioli import aioli_update, estimate_law, probe_mixture
from baselines.dbl import DBL, DBLConfig, balanced_start, dbl_update, field_losses, reference_losses
from baselines.doremi import group_dro_update
from baselines.mixing_laws import MixingLaws, MixingLawsConfig, best_mixture, domain_mixtures, field_mixtures, fit_law, law, loo_errors
from baselines.natural import natural_mixture
from baselines.odm import ODM, ODMConfig, exp3_policy, exploration_rate, update_estimates
from baselines.regmix import RegMix, RegMixConfig, cross_validated_r2, make_regressor, sample_mixtures, search_optimum, token_prior
from baselines.static import StaticPolicy
from dmix_gym.data.domains import DomainSpace
from dmix_gym.errors import ConfigError
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


SMALL_PENALTIES = (0.1, float("inf"))  # two, so the leave-one-out choice still runs; the full ladder costs minutes here


def small(name: str):
    """A baseline with one-off work small enough for the tiny corpus (in this process: no worker start-up)."""
    if name == "regmix":
        return RegMix(RegMixConfig(runs=6, proxy_steps=1, proxy_width=0.5, workers=1, search_samples=2000, top_k=20, folds=3))
    if name == "mixing-laws":
        return MixingLaws(MixingLawsConfig(runs=4, heldout_runs=1, proxy_steps=2, starts=2, search_samples=2000, workers=1,
                                           penalties=SMALL_PENALTIES))
    return make_baseline(name)


def test_every_baseline_acts_on_the_simplex_in_the_env(tiny_data):
    import gymnasium as gym

    env = gym.make("DataMix-v0", scenario=tiny_scenario(tiny_data).to_dict(), data_dir=str(tiny_data), progress=False)
    policies = {name: small(name) for name in BASELINES}
    for name, policy in policies.items():
        episode = rollout(policy, env, seed=0)  # rollout() checks every action is a distribution
        assert np.allclose(episode.mixtures.sum(1), 1) and np.all(episode.mixtures >= 0), name
        assert len(episode.rewards) >= 1
        if name == "naive":
            source = np.asarray(env.unwrapped.domain_space.field_of) == 0
            assert np.all(episode.mixtures[1:, source] == 0)
    regmix = policies["regmix"]
    fit = regmix.fit_result
    assert fit["compute"]["proxy_runs"] == 6 and fit["compute"]["tokens"] > 0
    assert fit["proxy_model"]["hidden_size"] < env.unwrapped.scenario.model.hidden_size  # RegMix's small proxies
    laws = policies["mixing-laws"].fit_result  # laws over domains, their shrinkage chosen by leave-one-out error
    assert {float(p) for p in laws["loo_error"]} == set(SMALL_PENALTIES)
    assert laws["penalty"] in SMALL_PENALTIES and len(laws["params"][0]) == 2 + env.unwrapped.domain_space.size
    assert set(fit["r2"]) == {"lightgbm", "linear"}
    laws = policies["mixing-laws"].fit_result
    assert laws["compute"]["proxy_runs"] == 5 and np.isfinite(laws["heldout_error"])
    doremi = policies["doremi"].fit_result
    assert doremi["compute"]["proxy_runs"] == 2 and np.isclose(sum(doremi["mixture"]), 1)
    for name in ("regmix", "mixing-laws", "doremi", "dbl"):  # one-off work is charged to the policy
        assert policies[name].compute()["tokens"] > 0, name
    assert policies["dbl"].compute()["proxy_runs"] == 1  # its Naive reference episode
    # A second RegMix reads the cached fit instead of re-running its proxies.
    again = small("regmix")
    again.prepare(env, progress=False)
    again.reset(ScenarioInfo.from_env(env))
    assert np.allclose(again.mixture, regmix.mixture)


def test_baselines_act_in_the_source_based_space(tiny_data):
    import gymnasium as gym

    from dmix_gym import CollapseDomains

    env = CollapseDomains(gym.make("DataMix-v0", scenario=tiny_scenario(tiny_data).to_dict(), data_dir=str(tiny_data),
                                   progress=False), to="source")
    regmix = small("regmix")
    for policy in (regmix, make_baseline("dbl"), make_baseline("random"), make_baseline("naive"), small("mixing-laws"),
                   make_baseline("doremi"), make_baseline("odm"), make_baseline("natural"), make_baseline("aioli")):
        episode = rollout(policy, env, seed=1)
        assert episode.mixtures.shape[1] == 2 and np.allclose(episode.mixtures.sum(1), 1), policy.name
    assert np.allclose(regmix.mixture.sum(), 1) and regmix.mixture.shape == (2,)


def test_natural_mix_is_token_proportional():
    assert np.allclose(natural_mixture([10, 30, 60]), [0.1, 0.3, 0.6])


def env_with_space(space: DomainSpace):
    """What ODM's `prepare` reads of an env: the unwrapped env's domain space."""
    return type("Env", (), {"unwrapped": type("Base", (), {"domain_space": space})()})()


def test_odm_moves_weight_to_the_domain_whose_loss_stays_high():
    assert exploration_rate(5, 1) == pytest.approx(0.2) and exploration_rate(5, 1000) < 0.02
    policy = ODM(ODMConfig(clock="steps"))  # INFO names no training set-up to count batches with
    policy.prepare(env_with_space(SPACE))
    policy.reset(INFO)
    history = History()
    history.append(np.zeros(9), {})
    losses = np.array([5.0, 1.0, 1.0, 1.0, 1.0])  # domain 0 has the most left to learn
    for _ in range(40):
        p = policy.act(history)
        assert np.isclose(p.sum(), 1) and np.all(p > 0)
        history.append(np.zeros(9), {"domain_loss": losses, "tokens": np.full(5, 100)})
    assert np.argmax(policy.act(history)) == 0
    # Bandit feedback: a domain not drawn keeps its estimate; a drawn one is importance-weighted.
    new = update_estimates(np.zeros(3), np.ones(3), np.array([0.5, 0.25, 0.25]), np.array([True, True, False]), 0.5)
    assert np.allclose(new, [1.0, 2.0, 0.0])
    assert np.allclose(exp3_policy(np.zeros(4), 0.1, 0.05), 0.25)


def test_odm_clock_counts_the_proxys_optimizer_steps():
    import json

    from dmix_gym.scenario import make_scenario

    k = 16
    space = DomainSpace(tuple(f"general/{i}" for i in range(8)) + tuple(f"math/{i}" for i in range(8)), (0,) * 8 + (1,) * 8,
                        ("general", "math"), ("math",), (1 / 8,) * 8 + (0,) * 8, (0,) * 8 + (1 / 8,) * 8)
    info = ScenarioInfo(json.loads(make_scenario("general-math", "cpu").to_json()), space, 20)
    assert info.optimizer_steps_per_step == 8  # 16,384 tokens a step, 128-token sequences, 16 a batch
    losses = np.where(np.arange(k) == 0, 5.0, 1.0)
    final = {}
    for clock in ("steps", "batches"):
        policy = ODM(ODMConfig(clock=clock))
        policy.prepare(env_with_space(space))
        policy.reset(info)
        history = History()
        history.append(np.zeros(k + 3), {})
        for _ in range(20):
            final[clock] = policy.act(history)
            history.append(np.zeros(k + 3), {"domain_loss": losses, "tokens": np.full(k, 100)})
    # Counting env steps, eps_t = 1/K for all 20 steps (t < K ln K = 44), so pi stays exactly uniform.
    assert np.allclose(final["steps"], 1 / k)
    assert final["batches"][0] > 1.5 / k and np.argmax(final["batches"]) == 0
    with pytest.raises(ConfigError, match="clock counts 'batches' or 'steps', got 'epochs'"):
        ODMConfig(clock="epochs")


def test_doremi_raises_the_weight_of_domains_above_their_reference_loss():
    weights = np.full(4, 0.25)
    reference = np.array([2.0, 2.0, 2.0, 2.0])
    for _ in range(10):
        weights = group_dro_update(weights, np.array([3.0, 2.0, 1.0, 2.5]), reference, eta=1.0, smoothing=1e-3)
    assert np.isclose(weights.sum(), 1) and weights[0] > weights[3] > weights[1]
    assert weights.min() >= 1e-3 / 4  # smoothing keeps every domain in play
    assert np.isclose(weights[1], weights[2])  # below the reference is clipped to no excess: no gain, no loss


def test_mixing_laws_recover_a_planted_law_and_its_optimum():
    rng = np.random.default_rng(0)
    planted = [np.array([2.0, 0.0, -3.0, 0.0]), np.array([1.5, 0.5, 0.0, -2.5])]  # c, log k, t (two fields)
    r = field_mixtures(2, 8, rng)
    assert np.allclose(r[:2], np.eye(2)) and np.allclose(r.sum(1), 1)
    for params in planted:
        loss = law(params, r) + rng.normal(0, 1e-4, len(r))
        fitted = fit_law(r, loss, starts=8)
        grid = np.stack([np.linspace(0, 1, 21), 1 - np.linspace(0, 1, 21)], axis=1)
        assert np.abs(law(fitted, grid) - law(params, grid)).max() < 0.02
    grid = np.stack([1 - np.linspace(0, 1, 101), np.linspace(0, 1, 101)], axis=1)
    total = law(planted[0], grid) + law(planted[1], grid)
    best = grid[np.argmin(total)]
    assert 0 < best[1] < 1  # the planted trade-off has an interior optimum the laws can find


def test_mixing_laws_over_domains_find_the_target_domain_a_planted_law_favours_from_eight_runs():
    from dmix_gym.data.domains import collapse, expand

    space = DomainSpace(("g/a", "g/b", "g/c", "m/x", "m/y", "m/z"), (0, 0, 0, 1, 1, 1), ("g", "m"), ("m",),
                        (0.5, 0.3, 0.2, 0, 0, 0), (0, 0, 0, 0.5, 0.3, 0.2))
    rng = np.random.default_rng(0)
    fields = field_mixtures(2, 8, rng)
    x = domain_mixtures(fields, space, rng, 0.3, 3.0)
    assert np.allclose(collapse(x, space), fields) and np.allclose(x.sum(1), 1)
    assert len({tuple(np.round(row[3:] / max(row[3:].sum(), 1e-9), 2)) for row in x[2:]}) == 6  # splits vary
    planted = [np.array([4.0, -0.5, -1.0, -1.0, -1.0, 0.0, 0.0, 0.0]),  # source loss: falls with any source data
               np.array([2.0, 1.0, 0, 0, 0, -2.0, -4.5, -2.0])]  # target loss: falls fastest with domain y
    loss = np.stack([law(p, x) for p in planted], 1) + rng.normal(0, 1e-3, (8, 2))
    groups = np.asarray(space.field_of)
    assert loo_errors(x, loss[:, 1], 4, 0, groups, 1e-3).mean() < loo_errors(x, loss[:, 1], 4, 0, groups, 1e3).mean()  # per-field misses y
    params = [fit_law(x, loss[:, i], 4, i, groups, 1e-3) for i in range(2)]
    candidates = np.concatenate([expand(rng.dirichlet([1, 1], 2000), space),
                                 domain_mixtures(rng.dirichlet([1, 1], 2000), space, rng, 0.3, 3.0)])
    found, true = best_mixture(params, np.ones(2), candidates), best_mixture(planted, np.ones(2), candidates)
    assert np.argmax(found[3:]) == 1 and found[4] > 0.8 * found[3:].sum()  # y carries the target share
    assert abs(found[3:].sum() - true[3:].sum()) < 0.1


def test_mixing_laws_choose_the_per_field_law_on_the_proxy_runs_where_domain_laws_failed():
    """v3's first Mixing laws row, on general-code: 8 proxy runs over 16 domains, a penalty grid that stopped at 1. Its
    laws fitted the runs to 0.01 nats, mispredicted each run left out by 0.93, and put their maximum on an all-source
    split (the row scored below Start-state). Leave-one-out over a grid reaching the per-field law (an infinite
    penalty) must choose that end, whose maximum gives the target field a share."""
    from baselines.mixing_laws import choose_penalty
    from baselines.proxy_runs import read_proxy_runs
    from dmix_gym.data.domains import collapse, expand

    root = Path(__file__).resolve().parents[1]
    runs = root / "benchmarks/results/leaderboard/staging-dmix-bench-v3/general-code-cpu-mixing-laws-ef4186e064-v1"
    staged = read_proxy_runs(runs)
    x, loss = staged.mixtures[:8], -staged.final_feedback[:8]  # the 8 fitted runs (2 more are held out)
    names = tuple(f"general/{i}" for i in range(8)) + tuple(f"code/{i}" for i in range(8))
    space = DomainSpace(names, (0,) * 8 + (1,) * 8, ("general", "code"), ("code",), (1 / 8,) * 8 + (0,) * 8,
                        (0,) * 8 + (1 / 8,) * 8)
    config = MixingLawsConfig(starts=1)
    assert np.isinf(max(config.penalties)) and 1.0 in config.penalties
    groups, weights = np.asarray(space.field_of), np.array([2.8428086187655826, 0.3675830014385879])  # v2's objective
    penalty, errors = choose_penalty(x, loss, groups, (1.0, max(config.penalties)), config)
    assert np.isinf(penalty) and errors[penalty] < errors[1.0]
    rng = np.random.default_rng(0)
    fields = np.concatenate([np.eye(2), rng.dirichlet([1, 1], 2000)])
    candidates = np.concatenate([expand(fields, space), np.eye(16), domain_mixtures(fields, space, rng, 0.3, 3.0)])
    best = best_mixture([fit_law(x, loss[:, i], 1, i, groups, penalty) for i in range(2)], weights, candidates)
    assert 0.05 < collapse(best, space)[1] < 0.95


def test_mixing_laws_take_the_simplest_law_within_one_standard_error_on_scarce_targets_proxy_runs():
    """v3's second Mixing laws row, on scarce-target: the lowest leave-one-out error chose a penalty of 100 over the
    per-field law by 0.005 nats, and its maximum put 0.43 of the mixture on one source domain (on three other tasks
    the row scored below the random policy the same way). Within one standard error of each other, the simpler law
    is chosen."""
    from baselines.mixing_laws import choose_penalty
    from baselines.proxy_runs import read_proxy_runs

    root = Path(__file__).resolve().parents[1]
    runs = root / "benchmarks/results/leaderboard/staging-dmix-bench-v3/general-math-cpu-mixing-laws-63de4791b3-v1"
    staged = read_proxy_runs(runs)
    x, loss = staged.mixtures[:8], -staged.final_feedback[:8]
    groups = np.repeat([0, 1], 8)
    penalty, errors = choose_penalty(x, loss, groups, (100.0, float("inf")), MixingLawsConfig(starts=1))
    assert errors[100.0] < errors[float("inf")]  # the lowest error alone would take the domain exponents
    assert np.isinf(penalty)
    with pytest.raises(ConfigError, match="penalty_rule"):
        MixingLawsConfig(penalty_rule="lowest")


def test_aioli_recovers_a_planted_linear_law_and_leans_toward_the_helpful_field():
    law = np.array([[0.2, 0.05], [0.0, 0.6]])  # field 1's data lowers its own loss a lot, field 0's a little
    p = np.array([0.5, 0.5])
    mixtures = np.stack([probe_mixture(p, k, 0.5) for k in range(2)])
    assert np.allclose(mixtures.sum(1), 1) and mixtures[0, 0] > p[0]
    drops = mixtures @ law.T
    assert np.allclose(estimate_law(mixtures, drops), law, atol=1e-4)
    moved = aioli_update(p, law, eta=5.0, weights=np.ones(2))
    assert moved[1] > p[1] and np.isclose(moved.sum(), 1)


def test_regmix_trains_narrower_proxies_of_any_scenario_and_refuses_a_bad_width(tiny_data):
    from baselines.proxy_runs import narrower_proxy

    scenario = tiny_scenario(tiny_data)
    narrow = narrower_proxy(scenario, 0.5)
    model = scenario.model
    assert narrow["hidden_size"] // narrow["num_heads"] == model.hidden_size // model.num_heads  # head size kept
    assert narrow["hidden_size"] <= model.hidden_size // 2 + model.hidden_size // model.num_heads
    assert narrower_proxy(dataclasses.replace(scenario, hf_model="some/model-dir"), 0.5) == {}  # a user's model: as is
    for width in (0.0, 1.5):
        with pytest.raises(ConfigError, match="width"):
            narrower_proxy(scenario, width)
        with pytest.raises(ConfigError, match="proxy_width"):
            RegMixConfig(proxy_width=width)
