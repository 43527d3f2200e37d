"""The native vector env and the stacked proxies behind it: each sub-env is the single env, batched."""

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch

import dmix_gym  # noqa: F401  (registers DataMix-v0)
from dmix_gym.model import build_model, llama_config
from dmix_gym.scenario import make_scenario
from dmix_gym.stacked import StackedLlama, StackedTrainer
from dmix_gym.trainer import ProxyTrainer
from dmix_gym.vector import DataMixVectorEnv

# Measured: sub-env observations and rewards match the single env's to ~5e-7 over a smoke episode (float
# rounding of batched vs single matmuls and of the optimizer update); 1e-4 leaves room across CPUs.
TOLERANCE = 1e-4


def _actions(space: gym.spaces.Box, steps: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.dirichlet(np.ones(space.shape[-1]), size=space.shape[0]).astype(np.float32) for _ in range(steps)]


def test_make_vec_uses_the_native_vector_env_and_its_spaces_batch_the_single_env():
    venv = gym.make_vec("DataMix-v0", num_envs=2, preset="smoke", progress=False)
    assert isinstance(venv.unwrapped, DataMixVectorEnv)
    single = gym.make("DataMix-v0", preset="smoke", progress=False)
    assert venv.single_observation_space == single.observation_space
    assert venv.single_action_space == single.action_space
    assert venv.observation_space.shape == (2, *single.observation_space.shape)
    assert venv.action_space.shape == (2, *single.action_space.shape)


def test_each_sub_env_follows_gymnasiums_sync_vector_env_over_the_single_env_including_autoreset():
    """The vector-env check: same seeds and actions through SyncVectorEnv(DataMixEnv) give the same batches."""
    native = gym.make_vec("DataMix-v0", num_envs=4, preset="smoke", progress=False)
    sync = gym.make_vec("DataMix-v0", num_envs=4, preset="smoke", progress=False, vectorization_mode="sync")
    obs_n, info_n = native.reset(seed=11)
    obs_s, info_s = sync.reset(seed=11)
    assert native.observation_space.contains(obs_n)
    np.testing.assert_allclose(obs_n, obs_s, atol=TOLERANCE)
    assert set(info_n) == set(info_s)
    steps = native.unwrapped.envs[0].max_steps + 2  # past the end: every sub-env autoresets once
    for actions in _actions(native.action_space, steps):
        obs_n, r_n, term_n, trunc_n, info_n = native.step(actions)
        obs_s, r_s, term_s, trunc_s, info_s = sync.step(actions)
        assert native.observation_space.contains(obs_n)
        assert r_n.shape == (4,) and term_n.dtype == bool and trunc_n.dtype == bool
        np.testing.assert_allclose(obs_n, obs_s, atol=TOLERANCE)
        np.testing.assert_allclose(r_n, r_s, atol=TOLERANCE)
        np.testing.assert_array_equal(term_n, term_s)
        np.testing.assert_array_equal(trunc_n, trunc_s)
        for key in ("feedback", "domain_loss", "tokens", "mixture"):
            np.testing.assert_allclose(info_n[key], info_s[key], atol=TOLERANCE, err_msg=key)
            np.testing.assert_array_equal(info_n["_" + key], info_s["_" + key])
    assert trunc_n.sum() == 0 and np.all(r_n != 0)  # the last step ran a fresh episode after the autoreset


def test_a_bad_action_in_one_sub_env_names_it_and_changes_nothing():
    venv = DataMixVectorEnv(num_envs=2, preset="smoke", progress=False)
    obs, _ = venv.reset(seed=3)
    actions = _actions(venv.action_space, 1)[0]
    actions[1, 0] = np.nan
    with pytest.raises(ValueError, match=r"sub-env 1: action\[0\] is nan"):
        venv.step(actions)
    assert all(env._t == 0 for env in venv.envs)
    actions[1] = actions[0]
    again, *_ = venv.step(actions)
    reference = DataMixVectorEnv(num_envs=2, preset="smoke", progress=False)
    reference.reset(seed=3)
    expected, *_ = reference.step(actions)
    np.testing.assert_allclose(again, expected, atol=TOLERANCE)


@pytest.mark.parametrize("group", [None, 1, 2])  # all K proxies per pass; one; two (the idle proxy's group skipped)
def test_stacked_proxies_train_like_separate_ones_and_an_inactive_proxy_stays_put(group):
    scenario = make_scenario("general-math", "smoke")
    config = llama_config(scenario.model, 512, 64, pad_id=0, eos_id=1)
    singles = [build_model(config, seed, torch.device("cpu")) for seed in range(3)]
    stacked = StackedLlama(config, 3)
    for k, model in enumerate(singles):
        stacked.load_slot(k, model.state_dict())
    trainers = [ProxyTrainer(model, scenario.train, 8, scenario.train.lr) for model in singles]
    batched = StackedTrainer(stacked, scenario.train, 8, scenario.train.lr, group)
    frozen = stacked.slot_state(2)
    generator = torch.Generator().manual_seed(0)
    active = torch.tensor([True, True, False])
    for _ in range(3):
        tokens = torch.randint(0, 512, (3, 32, 64), generator=generator)  # token 0 is padding: no embedding gradient
        stats = batched.train_on(tokens, active)
        for k in range(2):
            assert stats["loss"][k] == pytest.approx(trainers[k].train_on(tokens[k])["loss"], abs=1e-4)
    for k in range(2):
        state = stacked.slot_state(k)
        for name, value in singles[k].state_dict().items():
            torch.testing.assert_close(state[name], value, atol=1e-4, rtol=0, msg=name)
    for name, value in stacked.slot_state(2).items():
        assert torch.equal(value, frozen[name]), name


def test_sub_envs_from_random_weights_start_like_the_single_env():
    """init="scratch": each sub-env's proxy starts from its own seed's weights, as the single env's does."""
    from dmix_gym.env import DataMixEnv
    from dmix_gym.scenario import override

    scenario = override(make_scenario("general-math", "smoke"), init="scratch")
    venv = DataMixVectorEnv(num_envs=2, scenario=scenario, progress=False)
    obs, _ = venv.reset(seed=[7, 8])
    actions = _actions(venv.action_space, 2)
    stepped = [venv.step(a)[:2] for a in actions]
    for k, seed in enumerate((7, 8)):
        env = DataMixEnv(scenario, progress=False)
        first, _ = env.reset(seed=seed)
        np.testing.assert_allclose(obs[k], first, atol=TOLERANCE)
        for a, (batch_obs, batch_reward) in zip(actions, stepped):
            single_obs, single_reward, *_ = env.step(a[k])
            np.testing.assert_allclose(batch_obs[k], single_obs, atol=TOLERANCE)
            assert batch_reward[k] == pytest.approx(single_reward, abs=TOLERANCE)
    assert not np.allclose(obs[0], obs[1])  # two seeds, two random starts


def test_rollout_vector_gives_each_policy_its_rollout_episode_through_wrappers_and_other_domain_spaces():
    """The leaderboard's batched episodes: a task wrapper (the per-field space) and a policy of another space
    (bridged by adapt_env) act on each sub-env exactly as `rollout` has them act on the single env."""
    from baselines.static import TargetSchedule
    from dmix_gym.policy import rollout, rollout_vector
    from dmix_gym.wrappers import CollapseDomains

    def per_field(env):
        return CollapseDomains(env, to="source")

    venv = gym.make_vec("DataMix-v0", num_envs=2, preset="smoke", progress=False)
    fine = venv.unwrapped.envs[0].domain_space

    def policies():
        plain, bridged = TargetSchedule((0.3,)), TargetSchedule((0.7,))
        bridged.domain_space = dataclasses.replace(fine, names=tuple(f"other-{n}" for n in fine.names))  # another space
        return [plain, bridged]

    batched = rollout_vector(policies(), venv, [21, 22], wrap=per_field)
    for policy, seed, episode in zip(policies(), (21, 22), batched):
        alone = rollout(policy, per_field(gym.make("DataMix-v0", preset="smoke", progress=False)), seed=seed)
        assert episode.domains == alone.domains and len(episode.rewards) == len(alone.rewards)
        np.testing.assert_allclose(episode.mixtures, alone.mixtures, atol=1e-12)
        np.testing.assert_allclose(episode.observations, alone.observations, atol=TOLERANCE)
        np.testing.assert_allclose(episode.feedback, alone.feedback, atol=TOLERANCE)
    assert not np.allclose(batched[0].final_feedback, batched[1].final_feedback)
    with pytest.raises(ValueError, match="one policy object per sub-env"):
        plain = TargetSchedule((0.5,))
        rollout_vector([plain, plain], venv, [1, 2])


def test_cpu_training_passes_keep_their_logits_in_cache_and_a_gpu_trains_all_proxies_at_once():
    from dmix_gym.stacked import CPU_LOGITS_PER_PASS, default_slot_group

    assert default_slot_group("cuda", 10**9) is None
    assert default_slot_group("cpu", 16 * 128 * 4096) == 1  # the cpu preset's micro-batch logits: one proxy per pass
    assert default_slot_group("cpu", 16 * 64 * 512) == 16  # smoke's
    assert default_slot_group("cpu", CPU_LOGITS_PER_PASS * 4) == 1  # never fewer than one
