"""DataMix-v0 on a tiny scenario written by the test (mechanics) and on the real smoke scenario (forgetting)."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import dmix_gym  # noqa: F401
from dmix_gym import CollapseDomains, HistoryWindow, Scenario
from dmix_gym.scenario import PRESETS, override
from tests.helpers import tiny_scenario, tiny_spec


@pytest.fixture(scope="module")
def env(tiny_data):
    env = gym.make("DataMix-v0", scenario=tiny_scenario(tiny_data).to_dict(), data_dir=str(tiny_data), progress=False)
    yield env
    env.close()


def test_check_env_with_default_arguments(env):
    check_env(env.unwrapped)


def test_check_env_on_the_default_scenario():
    check_env(gym.make("DataMix-v0", preset="smoke", progress=False).unwrapped)


def test_info_reports_timings_when_asked(env, tiny_data):
    _, info = env.reset(seed=0)
    assert "train_seconds" not in info  # off by default: wall-clock times would break determinism checks
    timed = gym.make("DataMix-v0", scenario=tiny_scenario(tiny_data).to_dict(), data_dir=str(tiny_data), progress=False,
                     timing=True)
    timed.reset(seed=0)
    _, *_, info = timed.step(np.ones(timed.unwrapped.num_domains))
    assert info["train_seconds"] > 0 and info["eval_seconds"] > 0


def test_spaces_and_first_observation(env):
    base = env.unwrapped
    d, k = base.num_domains, base.num_fields
    assert env.action_space.shape == (d,)
    assert env.observation_space.shape == (d + k + 1 + 1,)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert np.allclose(obs[:d], base.p0, atol=1e-6)
    assert np.all(obs[d : d + k] < 0) and obs[d + k] == 0 and obs[-1] == 1
    _, _, _, _, step_info = env.step(np.ones(d))
    assert set(info) == set(step_info)
    for key in info:
        assert np.shape(info[key]) == np.shape(step_info[key])


@pytest.mark.parametrize("bad,match", [
    ([np.nan, 1, 1, 1], r"action\[0\] is nan"),
    ([1, np.inf, 1, 1], r"action\[1\] is inf"),
    ([1, 1, -0.5, 1], r"action\[2\] is -0.5"),
    ([0, 0, 0, 0], "sums to 0"),
    ([1, 1, 1], r"shape \(3,\)"),
])
def test_bad_actions_raise_and_leave_state_unchanged(env, bad, match):
    obs, _ = env.reset(seed=1)
    base = env.unwrapped
    used_before = base.sampler.used.copy()
    weights_before = next(base.model.parameters()).detach().clone()
    with pytest.raises(ValueError, match=match):
        env.step(np.array(bad, dtype=np.float32))
    assert np.array_equal(base.sampler.used, used_before)
    assert torch_equal(next(base.model.parameters()), weights_before)
    obs2, *_ = env.step(np.ones(base.num_domains))  # still usable
    assert obs2[base.num_domains + base.num_fields] == pytest.approx(1 / base.max_steps)


def torch_equal(a, b) -> bool:
    return bool((a.detach() == b).all())


def test_truncation_at_max_steps(env):
    env.reset(seed=0)
    base = env.unwrapped
    for t in range(1, base.max_steps + 1):
        obs, reward, terminated, truncated, info = env.step(base.p0 + 0.1)
        assert np.isfinite(reward)
        assert truncated == (t == base.max_steps) and not terminated
    assert obs[base.num_domains + base.num_fields] == 1.0


def test_termination_when_target_field_runs_out(tiny_data):
    scenario = tiny_scenario(tiny_data, tokens_per_step=4096, max_steps=50)
    env = gym.make("DataMix-v0", scenario=scenario.to_dict(), data_dir=str(tiny_data), progress=False)
    obs, _ = env.reset(seed=0)
    base = env.unwrapped
    steps, terminated, truncated = 0, False, False
    while not (terminated or truncated):
        obs, _, terminated, truncated, info = env.step(base.p_star)
        steps += 1
    assert terminated and not truncated and steps < 50
    assert obs[-1] == 0.0  # no target data left
    assert info["tokens"].sum() == base.sequences_per_step * base.shards.seq_len  # the last step was topped up from the source


def test_same_seed_same_episode(env):
    def episode(seed):
        obs, _ = env.reset(seed=seed)
        out = [obs]
        rng = np.random.default_rng(5)
        for _ in range(3):
            obs, r, *_ = env.step(rng.dirichlet(np.ones(env.unwrapped.num_domains)))
            out.append(np.append(obs, r))
        return out

    a, b = episode(3), episode(3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    c = episode(4)
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_history_window(env):
    wrapped = HistoryWindow(env, 3)
    obs, _ = wrapped.reset(seed=0)
    assert obs.shape == (3, env.observation_space.shape[0])
    assert np.array_equal(obs[0], obs[2])
    action = np.ones(env.unwrapped.num_domains)
    obs1, *_ = wrapped.step(action)
    obs2, *_ = wrapped.step(action)
    assert np.array_equal(obs2[1], obs1[2])
    assert obs2[2][env.unwrapped.num_domains + env.unwrapped.num_fields] == pytest.approx(2 / env.unwrapped.max_steps)


def test_collapse_to_source_space(env):
    base = env.unwrapped
    wrapped = CollapseDomains(env, to="source")
    assert wrapped.action_space.shape == (2,)
    obs, _ = wrapped.reset(seed=0)
    assert np.allclose(obs[:2], [1.0, 0.0], atol=1e-6)
    obs, *_ , info = wrapped.step(np.array([0.25, 0.75]))
    assert np.allclose(obs[:2], [0.25, 0.75], atol=1e-6)
    fine = info["mixture"]
    math_domains = np.array(base.domain_space.field_of) == 1
    assert fine[math_domains].sum() == pytest.approx(0.75, abs=0.02)
    # within the target field the split follows p*
    assert np.allclose(fine[math_domains] / fine[math_domains].sum(), base.p_star[math_domains], atol=0.05)
    with pytest.raises(ValueError, match=r"action\[0\] is -1"):
        wrapped.step(np.array([-1.0, 2.0]))


def test_collapse_to_fine_space(tiny_data, env):
    fine_space = env.unwrapped.domain_space
    source_spec = tiny_spec(tiny_data, domains="source")
    coarse = make_coarse_env(tiny_data, source_spec)
    wrapped = CollapseDomains(coarse, to="fine", fine_space=fine_space)
    assert wrapped.action_space.shape == (fine_space.size,)
    obs, _ = wrapped.reset(seed=0)
    assert np.allclose(obs[: fine_space.size], fine_space.p0, atol=1e-6)
    fine_action = np.array(fine_space.p_star) * 0.5 + np.array(fine_space.p0) * 0.5
    _, *_, info = wrapped.step(fine_action)
    assert np.allclose(info["mixture"], [0.5, 0.5], atol=0.02)


def make_coarse_env(tiny_data, spec):
    model, train = PRESETS["smoke"]
    scenario = override(Scenario(data=spec, model=model, train=train), base_tokens=16_384)
    return gym.make("DataMix-v0", scenario=scenario.to_dict(), data_dir=str(tiny_data), progress=False)


def test_render_modes(tiny_data):
    env = gym.make("DataMix-v0", scenario=tiny_scenario(tiny_data).to_dict(), data_dir=str(tiny_data), progress=False,
                   render_mode="rgb_array")
    env.reset(seed=0)
    env.step(np.ones(env.unwrapped.num_domains))
    image = env.render()
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8 and image.std() > 0
    env.unwrapped.render_mode = "ansi"
    text = env.render()
    assert "step 1/" in text and "feedback" in text


def test_scenario_json_round_trip(tiny_data):
    scenario = tiny_scenario(tiny_data)
    assert Scenario.from_dict(scenario.to_dict()) == scenario


def test_pure_target_training_shows_forgetting():
    """Training on target data only raises target feedback and lowers source feedback (smoke preset, real data)."""
    env = gym.make("DataMix-v0", preset="smoke", progress=False)
    base = env.unwrapped
    _, info = env.reset(seed=0)
    start = info["feedback"]
    start_source_loss = info["domain_loss"][np.array(base.domain_space.field_of) == 0].mean()
    for _ in range(base.max_steps):
        _, _, terminated, truncated, info = env.step(base.p_star)
    general, math = base.domain_space.fields.index("general"), base.domain_space.fields.index("math")
    assert info["feedback"][math] > start[math] + 0.1
    assert info["feedback"][general] < start[general]
    assert info["domain_loss"][np.array(base.domain_space.field_of) == 0].mean() > start_source_loss


def test_episode_state_resumes_the_data_order(tiny_data):
    def make():
        return gym.make("DataMix-v0", scenario=tiny_scenario(tiny_data).to_dict(), data_dir=str(tiny_data),
                        progress=False).unwrapped

    env = make()
    env.reset(seed=3)
    action = np.linspace(1.0, 2.0, env.num_domains)
    env.step(action)
    state = env.episode_state()
    obs_saved = env._observation()
    expected = [env.step(action)[4]["tokens"] for _ in range(2)]
    resumed = make()
    resumed.reset(seed=3)
    resumed.restore_episode_state(json.loads(json.dumps(state)))
    assert np.array_equal(resumed._observation(), obs_saved)
    for tokens in expected:
        assert np.array_equal(resumed.step(action)[4]["tokens"], tokens)
    assert len(resumed.history) == len(env.history)


@pytest.mark.gpu
def test_cuda_episode_stays_near_the_cpu_one(env, tiny_data):
    # On CUDA the proxy (and its own base checkpoint) trains and evaluates under bf16 autocast: feedback must stay
    # near the fp32 CPU episode's (a masking or dtype bug moves it by whole nats), and the data drawn must be identical.
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    cuda = gym.make("DataMix-v0", scenario=tiny_scenario(tiny_data).to_dict(), data_dir=str(tiny_data), progress=False,
                    device="cuda")
    actions = np.random.default_rng(5).dirichlet(np.ones(env.unwrapped.num_domains), size=3)
    for e in (env, cuda):
        e.reset(seed=3)
    for action in actions:
        on_cpu, on_cuda = env.step(action), cuda.step(action)
        assert np.all(np.isfinite(on_cuda[0]))
        assert np.allclose(on_cuda[4]["feedback"], on_cpu[4]["feedback"], atol=0.5)
        assert np.array_equal(on_cuda[4]["tokens"], on_cpu[4]["tokens"])  # same data drawn: sampling is on the CPU
    cuda.close()


def test_huge_finite_weights_normalise_without_overflow():
    from dmix_gym.env import normalise_action

    assert np.allclose(normalise_action([1e308, 1e308, 1, 1], 4), [0.5, 0.5, 0, 0])
    assert np.allclose(normalise_action([2.0, 6.0], 2), [0.25, 0.75])


@pytest.mark.parametrize("override_, match", [
    ({"max_steps": 0}, "TrainConfig.max_steps is 0: it must be a positive integer"),
    ({"lr": -1.0}, "TrainConfig.lr is -1.0"),
    ({"lr_schedule": "linear"}, "TrainConfig.lr_schedule is 'linear'"),
    ({"target_fraction": 0.0}, r"TrainConfig.target_fraction is 0.0: it must be in \(0, 1\]"),
    ({"hidden_size": 50, "num_heads": 4}, "ProxyConfig.hidden_size is 50: it must be a multiple of num_heads"),
    ({"reward_weights": (1.0,)}, "reward_weights has 1 entries for 2 fields"),
    ({"reward_weights": (-1.0, 1.0)}, "must be finite, non-negative"),
])
def test_bad_config_values_are_named(tiny_data, override_, match):
    from dmix_gym.errors import ConfigError

    with pytest.raises(ConfigError, match=match):
        tiny_scenario(tiny_data, **override_)


def test_a_scenario_file_sets_its_regime_over_the_preset(tmp_path, monkeypatch):
    from dmix_gym.errors import ConfigError
    from dmix_gym.scenario import make_scenario

    spec = json.loads((dmix_gym.scenario.find_scenario_file("general-math")).read_text())
    (tmp_path / "wsd-math.json").write_text(json.dumps({**spec, "name": "wsd-math", "train": {"lr_schedule": "wsd",
                                                        "decay_fraction": 0.3}, "reward_weights": [0.7, 0.3]}))
    monkeypatch.setenv("DMIX_SCENARIO_PATH", str(tmp_path))
    scenario = make_scenario("wsd-math", "smoke")
    assert scenario.train.lr_schedule == "wsd" and scenario.train.decay_fraction == 0.3
    assert scenario.weights() == (0.7, 0.3) and scenario.train.max_steps == PRESETS["smoke"][1].max_steps
    assert make_scenario("wsd-math", "smoke", decay_fraction=0.1).train.decay_fraction == 0.1  # overrides win
    (tmp_path / "bad.json").write_text(json.dumps({**spec, "name": "bad", "train": {"warmup": 3}}))
    with pytest.raises(ConfigError, match=r"bad.json: unknown train option\(s\) \['warmup'\]"):
        make_scenario("bad", "smoke")


def test_wsd_holds_the_peak_then_anneals_linearly():
    from dmix_gym.trainer import lr_at

    lrs = [lr_at(s, 100, 1.0, 0.05, 0.1, "wsd", 0.2) for s in range(100)]
    assert lrs[4] == 1.0 and lrs[0] == pytest.approx(0.2)  # 5 warm-up steps
    assert all(lr == 1.0 for lr in lrs[5:80])  # stable
    assert lrs[80] == pytest.approx(1.0 - 0.9 / 20) and lrs[99] == pytest.approx(0.1)  # 20 decay steps down to the floor
    assert np.all(np.diff(lrs[80:]) < 0)
    cosine = [lr_at(s, 100, 1.0, 0.05, 0.1) for s in range(100)]
    assert cosine[50] < 1.0 and cosine[99] == pytest.approx(0.1, abs=1e-3)


def test_a_scarce_target_corpus_runs_out_or_repeats(tiny_data):
    def run(**options):
        env = gym.make("DataMix-v0", scenario=tiny_scenario(tiny_data, max_steps=20, **options).to_dict(),
                       data_dir=str(tiny_data), progress=False)
        env.reset(seed=0)
        base, steps, terminated, truncated = env.unwrapped, 0, False, False
        while not (terminated or truncated):
            _, _, terminated, truncated, info = env.step(base.p_star)
            steps += 1
        return base, steps, terminated

    full, full_steps, _ = run()
    scarce, scarce_steps, terminated = run(target_fraction=0.2)
    assert terminated and scarce_steps < full_steps
    target = np.asarray(scarce.domain_space.field_of) == 1
    assert scarce.sampler.totals[target].sum() < full.sampler.totals[target].sum()
    repeating, steps, terminated = run(target_fraction=0.2, on_exhausted="repeat")
    assert not terminated and steps == 20 and repeating.sampler.epochs()[target].max() > 1
