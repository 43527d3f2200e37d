"""The Data Mixing Agent: valid mixtures, SFT fits a planted rule, CQL through d3rlpy ranks actions, save/load, rollout."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.agent import TransformerAgent
from agents.features import from_unit, last_window, to_unit, windows
from agents.networks import AgentConfig, Block, count_parameters
from agents.offline_data import OfflineData, load_offline
from agents.sft import SFTConfig, train_sft
from datasets_builder.collection import collect
from datasets_builder.publish import publish
from dmix_gym.data.domains import DomainSpace
from dmix_gym.errors import ConfigError
from dmix_gym.policy import History, ScenarioInfo, rollout
from tests.helpers import tiny_scenario

SMALL = AgentConfig(window=4, d_model=32, layers=2, heads=2, ffn=64, features="relative")


@pytest.fixture(scope="module")
def tiny_offline(tiny_data, tmp_path_factory) -> OfflineData:
    """A real (tiny) dmix Minari dataset, collected through the env and published, as agent training data."""
    os.environ["DMIX_CACHE_DIR"] = str(tmp_path_factory.getbasetemp() / "cache")
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(tmp_path_factory.mktemp("minari"))
    try:
        folder = collect(tiny_scenario(tiny_data), name="agents", total=8, qualities=(1, 50), workers=1,
                         data_dir=str(tiny_data), progress=False)
        return load_offline(publish(folder, overwrite=True), SMALL.window, SMALL.features)
    finally:
        if previous is None:
            os.environ.pop("MINARI_DATASETS_PATH")
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous


def small_agent(data: OfflineData, seed: int = 0) -> TransformerAgent:
    return TransformerAgent.create(data.domain_space, data.feedback_mean, data.feedback_std, SMALL, seed)


def test_default_agent_is_about_two_million_parameters():
    space = DomainSpace(tuple(f"d{i}" for i in range(16)), (0,) * 8 + (1,) * 8, ("general", "math"), ("math",),
                        (1 / 8,) * 8 + (0,) * 8, (0,) * 8 + (1 / 8,) * 8)
    agent = TransformerAgent.create(space, np.zeros(2), np.ones(2))
    assert 1.2e6 < count_parameters(agent.net) < 2.5e6


def test_last_only_block_equals_full_block():
    torch.manual_seed(0)
    block = Block(16, 2, 32).eval()
    h = torch.randn(3, 5, 16)
    mask = torch.triu(torch.full((5, 5), float("-inf")), diagonal=1)
    assert torch.allclose(block(h, mask)[:, -1], block(h, mask, last_only=True)[:, 0], atol=1e-5)


def test_windows_pad_with_the_first_token():
    seq = np.arange(6, dtype=np.float32).reshape(3, 2)
    w = windows(seq, 4)
    assert w.shape == (3, 4, 2)
    assert np.array_equal(w[0], np.repeat(seq[:1], 4, 0))
    assert np.array_equal(w[2], np.concatenate([seq[:1], seq]))
    assert np.array_equal(last_window(seq, 4), w[-1])


def test_relative_features_ignore_the_feedback_level_and_absolute_ones_read_it():
    from agents.features import tokens

    rng = np.random.default_rng(0)
    d, k = 4, 2
    episode = np.concatenate([rng.dirichlet(np.ones(d), 5), -3 - rng.random((5, k)), np.arange(5)[:, None] / 4], 1)
    shifted = episode.copy()
    shifted[:, d:d + k] -= [0.13, 0.5]  # another model or source corpus: the same changes from another start
    mean, std = np.array([-3.5, -3.5]), np.array([0.2, 1.4])
    relative = tokens(episode, d, k, mean, std, "relative")
    assert np.allclose(relative, tokens(shifted, d, k, mean, std, "relative"))
    assert np.allclose(relative[:, d:d + k] * std, episode[:, d:d + k] - episode[0, d:d + k], atol=1e-5)
    absolute = tokens(shifted, d, k, mean, std, "absolute")
    assert np.allclose(absolute[:, d:d + k] * std + mean, shifted[:, d:d + k], atol=1e-5)
    with pytest.raises(ConfigError, match="unknown feedback features 'raw'"):
        tokens(episode, d, k, mean, std, "raw")
    with pytest.raises(ConfigError, match="unknown feedback features"):
        AgentConfig(features="level")


def test_response_features_ignore_how_fast_a_model_learns_and_relative_ones_read_it():
    from agents.features import tokens

    rng = np.random.default_rng(1)
    d, k = 4, 2
    episode = np.concatenate([rng.dirichlet(np.ones(d), 6), -3 - rng.random((6, k)), np.arange(6)[:, None] / 5], 1)
    faster = episode.copy()  # a larger model: each field moves 2.5x and 1.5x as far from another start, same shape
    faster[:, d:d + k] = episode[0, d:d + k] - [0.2, 0.4] + (episode[:, d:d + k] - episode[0, d:d + k]) * [2.5, 1.5]
    mean, std = np.array([-3.5, -3.5]), np.array([0.2, 1.4])
    response = tokens(episode, d, k, mean, std, "response")
    assert np.allclose(response, tokens(faster, d, k, mean, std, "response"), atol=1e-5)
    assert np.allclose(np.abs(response[1, d:d + k]), 1.0) and np.all(response[0, d:d + k] == 0)
    assert not np.allclose(tokens(episode, d, k, mean, std, "relative"), tokens(faster, d, k, mean, std, "relative"))
    first = tokens(episode[:1], d, k, mean, std, "response")  # at reset, before any move: zeros, not a division by 0
    assert np.all(first[0, d:d + k] == 0)


def test_sft_can_imitate_the_top_returns_whatever_behaviour_logged_them(tiny_offline, tmp_path):
    ids, index = np.unique(tiny_offline.episode, return_inverse=True)
    returns = np.bincount(index, weights=tiny_offline.rewards_for("balanced"))
    top = tiny_offline.top_episodes(0.25)
    kept = np.isin(ids, np.unique(top.episode))
    assert kept.sum() == 2 and returns[kept].min() >= returns[~kept].max()
    with pytest.raises(ConfigError, match="top share of episodes must lie in"):
        tiny_offline.top_episodes(0.0)
    _, metrics = train_sft(tiny_offline, tmp_path, SMALL, SFTConfig(quality=None, top=0.5, epochs=1), progress=False)
    imitated = int(np.isin(tiny_offline.episode, ids[np.argsort(-returns)[:4]]).sum())  # the top half's transitions
    assert metrics["train_transitions"] + metrics["val_transitions"] == imitated
    # Another scenario (another draw) whose feedback moves 10x as far: its episodes compete among themselves only.
    faster = np.isin(tiny_offline.episode, ids[::2])
    fast = dataclasses.replace(tiny_offline, scenario_index=faster.astype(int),
                               feedback_change=np.where(faster[:, None], 10, 1) * tiny_offline.feedback_change)
    per_scenario = fast.top_episodes(0.25)
    kept = np.unique(per_scenario.episode)
    assert len(kept) == 2 and set(np.unique(per_scenario.scenario_index)) == {0, 1}
    for scenario in (0, 1):
        mine = np.isin(ids, np.unique(fast.episode[fast.scenario_index == scenario]))
        best = ids[mine][np.argmax(returns[mine])]  # 10x leaves the order within the scenario as it was
        assert best in kept


@pytest.fixture
def two_space_ids(tiny_data, tmp_path, monkeypatch) -> list:
    """Two real (tiny) datasets of one scenario's fields in two domain spaces (labelled, clustered), as a scenario
    space's draws are."""
    from dmix_gym.scenario import Scenario
    from tests.helpers import tiny_spec

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    monkeypatch.setenv("DMIX_CACHE_DIR", str(tmp_path / "cache"))
    labelled = tiny_scenario(tiny_data)
    clustered = Scenario(data=tiny_spec(tiny_data, name="tiny-clustered", domains="cluster"), model=labelled.model,
                         train=labelled.train)
    return [publish(collect(s, name="spaces", total=2, qualities=(1, 50), workers=1, data_dir=str(tiny_data),
                            progress=False), overwrite=True) for s in (labelled, clustered)]


@pytest.mark.filterwarnings("ignore:Number of distinct clusters", "ignore:invalid value encountered in divide")
def test_datasets_of_other_domain_spaces_train_together_on_their_fields_shares(two_space_ids, tmp_path):
    from datasets_builder.publish import dmix_metadata
    from dmix_gym.data.domains import collapse, source_space

    ids = two_space_ids
    fine = [load_offline(i, SMALL.window, SMALL.features) for i in ids]
    assert fine[0].domains != fine[1].domains  # each build's own domains
    with pytest.raises(ConfigError, match="another domain space"):
        load_offline(ids, SMALL.window, SMALL.features)
    # Another draw has its own natural field shares (p0, p*): per-field training takes it, fine training does not.
    meta = dmix_metadata(ids[1])
    fields = np.asarray(meta["field_of"])
    p0 = 0.8 * np.asarray(meta["p0"]) + 0.2 * (fields == fields.max()) / (fields == fields.max()).sum()
    p_star = 0.5 * np.asarray(meta["p_star"]) + 0.5 * (fields == 0) / (fields == 0).sum()
    ids[1].storage.update_metadata({"dmix": {**meta, "p0": p0.tolist(), "p_star": p_star.tolist()}})
    with pytest.raises(ConfigError, match="another domain space"):
        load_offline(ids, SMALL.window, SMALL.features)
    both = load_offline(ids, SMALL.window, SMALL.features, space="source")
    assert both.domains == ("general/all", "math/all") and len(both) == len(fine[0]) + len(fine[1])
    assert both.domain_space == source_space(fine[0].domain_space)  # the first dataset's field shares
    # Standardised as a benchmark's objective instead of the first draw: the reward weighs the fields as the score does.
    scored = load_offline(ids, SMALL.window, SMALL.features, space="source", standardise=([-5.0, -6.0], [0.2, 1.4]))
    halved = load_offline(ids, SMALL.window, SMALL.features, space="source", standardise=([-5.0, -6.0], [0.4, 2.8]))
    assert scored.feedback_std.tolist() == pytest.approx([0.2, 1.4]) and scored.feedback_mean.tolist() == [-5.0, -6.0]
    np.testing.assert_allclose(halved.rewards_for("balanced"), scored.rewards_for("balanced") / 2, rtol=1e-5)
    assert not np.allclose(scored.rewards_for("balanced"), both.rewards_for("balanced"))
    with pytest.raises(ConfigError, match="a mean and a std per field"):
        load_offline(ids, SMALL.window, SMALL.features, space="source", standardise=([-5.0], [0.2]))
    renamed = {**dmix_metadata(ids[1]), "fields": ["general", "code"], "target_fields": ["code"]}
    ids[1].storage.update_metadata({"dmix": renamed})
    with pytest.raises(ConfigError, match="need the same fields"):
        load_offline(ids, SMALL.window, SMALL.features, space="source")
    expected = np.concatenate([collapse(f.actions, f.domain_space) for f in fine])
    np.testing.assert_allclose(both.actions, expected, atol=1e-6)  # each dataset's mixtures summed per field
    np.testing.assert_allclose(both.windows[:, -1, :2].sum(1), 1.0, atol=1e-5)  # observed mixtures too
    agent, _ = train_sft(both, tmp_path / "agent", SMALL, SFTConfig(quality=None, epochs=1), progress=False)
    assert agent.domain_space.names == ("general/all", "math/all")
    with pytest.raises(ConfigError, match="space must be"):
        load_offline(ids, SMALL.window, SMALL.features, space="taxonomy")


def test_agents_refuse_windows_of_other_features_and_old_agents_load_as_absolute(tiny_offline, tmp_path):
    from agents.decision_transformer import DTSettings, train_dt

    absolute = dataclasses.replace(SMALL, features="absolute")
    with pytest.raises(ConfigError, match="reads absolute feedback features, but these windows carry relative"):
        train_sft(tiny_offline, tmp_path, absolute, SFTConfig(quality=None, epochs=1), progress=False)
    with pytest.raises(ConfigError, match="reads absolute feedback features"):
        train_dt(tiny_offline, tmp_path, DTSettings(steps=1, features="absolute"), progress=False)
    path = small_agent(tiny_offline).save(tmp_path / "agent.pt")
    payload = torch.load(path, weights_only=True)
    del payload["config"]["features"]  # as an agent saved before the setting existed
    torch.save(payload, path)
    assert TransformerAgent.load(path).config.features == "absolute"


def test_the_state_token_carries_the_target_data_left(tiny_offline, tmp_path):
    from agents.features import token_dim, tokens

    d, k = len(tiny_offline.domains), len(tiny_offline.fields)
    assert tiny_offline.windows.shape[-1] == token_dim(d, k, len(tiny_offline.domain_space.target_fields))
    agent = small_agent(tiny_offline)
    rng = np.random.default_rng(3)
    obs = np.concatenate([rng.dirichlet(np.ones(d)), [-4.0, -5.0], [0.25], [1.0]]).astype(np.float32)
    scarce = obs.copy()
    scarce[-1] = 0.05  # the same state with 5% of the target data left
    assert np.allclose(agent.state_tokens(scarce[None])[:, -1], 0.05)
    assert np.isclose(tokens(obs[None], d, k, np.zeros(k), np.ones(k), "absolute")[0, -1], 0.25)  # without it
    mixtures = []
    for observation in (obs, scarce):
        history = History()
        history.append(observation, {})
        mixtures.append(agent.act(history))
    assert not np.allclose(*mixtures)  # the agent reads it
    old = TransformerAgent.create(tiny_offline.domain_space, tiny_offline.feedback_mean, tiny_offline.feedback_std,
                                  dataclasses.replace(SMALL, target_left=False))
    path = old.save(tmp_path / "old.pt")
    payload = torch.load(path, weights_only=True)
    del payload["config"]["target_left"]  # as an agent saved before the setting existed
    torch.save(payload, path)
    loaded = TransformerAgent.load(path)
    assert not loaded.config.target_left and loaded.state_tokens(obs[None]).shape == (1, token_dim(d, k))
    with pytest.raises(ConfigError, match="reads tokens without the data left, these windows are with it"):
        train_sft(tiny_offline, tmp_path, loaded.config, SFTConfig(quality=None, epochs=1), progress=False)


def test_simplex_maps_to_d3rlpy_box_and_back():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(7), size=50)
    a = to_unit(p, 4.0)
    assert np.all(np.abs(a) < 1)
    assert np.allclose(from_unit(a, 4.0), p, atol=1e-5)
    # Any point of d3rlpy's box, edges included, maps to a valid mixture.
    q = from_unit(rng.uniform(-1, 1, size=(50, 7)) ** 3 * np.array([1, -1, 1, 1, -1, 1, 1]), 4.0)
    assert np.all(q >= 0) and np.allclose(q.sum(1), 1)
    assert np.allclose(from_unit(np.ones((1, 3)), 4.0).sum(), 1)


def test_agent_always_outputs_a_distribution(tiny_offline):
    agent = small_agent(tiny_offline)
    rng = np.random.default_rng(1)
    d, k = len(tiny_offline.domains), len(tiny_offline.fields)
    for scale in (1e-3, 1.0, 1e3):
        history = History()
        for _ in range(6):
            obs = np.concatenate([rng.dirichlet(np.ones(d)), -scale * rng.random(k), [0.5], [1.0]]).astype(np.float32)
            history.append(obs, {})
            p = agent.act(history)
            assert p.shape == (d,) and np.all(np.isfinite(p)) and np.all(p >= 0) and np.isclose(p.sum(), 1)


def test_sft_fits_a_planted_next_distribution_rule(tiny_offline, tmp_path):
    # Plant a rule on real windows: the next mixture is the last mixture with its domains rotated by one.
    d = len(tiny_offline.domains)
    last_mixture = tiny_offline.windows[:, -1, :d]
    planted = dataclasses.replace(tiny_offline, actions=np.roll(last_mixture, 1, axis=1).astype(np.float32))
    baseline = np.mean((planted.actions - planted.actions.mean(0)) ** 2)  # predicting the mean target
    agent, metrics = train_sft(planted, tmp_path, SMALL, SFTConfig(quality=None, epochs=200, batch_size=16, lr=3e-3,
                                                                    val_episodes=0.0), progress=False)
    with torch.no_grad():
        fitted = agent.net.mixture(torch.from_numpy(planted.windows)).numpy()
    assert np.mean((fitted - planted.actions) ** 2) < 0.1 * baseline
    assert (tmp_path / "sft.pt").exists() and metrics["history"][-1]["epoch"] == 200


def test_sft_resume_matches_an_uninterrupted_run(tiny_offline, tmp_path):
    config = SFTConfig(quality=None, epochs=4, batch_size=8, checkpoint_every=2, val_episodes=0.25)
    whole, _ = train_sft(tiny_offline, tmp_path / "whole", SMALL, config, progress=False)
    train_sft(tiny_offline, tmp_path / "split", SMALL, dataclasses.replace(config, epochs=2), progress=False)
    # Continue the same run: the checkpoint records its settings, so extend them by hand as a longer run would.
    ckpt = torch.load(tmp_path / "split" / "sft-checkpoint.pt", weights_only=True)
    ckpt["settings"]["sft"]["epochs"] = 4
    torch.save(ckpt, tmp_path / "split" / "sft-checkpoint.pt")
    resumed, _ = train_sft(tiny_offline, tmp_path / "split", SMALL, config, progress=False)
    for (name, a), (_, b) in zip(whole.net.state_dict().items(), resumed.net.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), name


def test_sft_refuses_a_checkpoint_of_other_settings(tiny_offline, tmp_path):
    config = SFTConfig(quality=None, epochs=2, checkpoint_every=1)
    train_sft(tiny_offline, tmp_path, SMALL, config, progress=False)
    with pytest.raises(ValueError, match="other settings"):
        train_sft(tiny_offline, tmp_path, SMALL, dataclasses.replace(config, lr=1e-2), progress=False)


def test_window_target_shares_are_the_target_shares_act_gives_after_each_state(tiny_offline):
    agent = small_agent(tiny_offline, seed=1)
    rng = np.random.default_rng(2)
    d, k = len(tiny_offline.domains), len(tiny_offline.fields)
    target = np.asarray(tiny_offline.domain_space.field_of) != 0
    history, expected = History(), []
    for t in range(SMALL.window + 3):  # past one window, so the probe's windows slide as act's do
        history.append(np.concatenate([rng.dirichlet(np.ones(d)), -rng.random(k) * 5, [t / 10], [0.9]]), {})
        expected.append(agent.act(history)[target].sum())
    shares = agent.window_target_shares(agent.state_tokens(history.stacked()))
    assert shares.shape == (len(expected),)
    assert np.allclose(shares, expected, atol=1e-6)


def test_save_load_round_trip_gives_identical_actions(tiny_offline, tmp_path):
    agent = small_agent(tiny_offline, seed=3)
    path = agent.save(tmp_path / "agent.pt")
    again = TransformerAgent.load(path)
    history = History()
    rng = np.random.default_rng(0)
    d, k = len(tiny_offline.domains), len(tiny_offline.fields)
    for _ in range(5):
        history.append(np.concatenate([rng.dirichlet(np.ones(d)), -rng.random(k) * 5, [0.2], [0.9]]), {})
        assert np.array_equal(agent.act(history), again.act(history))
    with pytest.raises(ValueError, match="not a saved dmix agent"):
        torch.save({"x": 1}, tmp_path / "other.pt")
        TransformerAgent.load(tmp_path / "other.pt")


def test_a_saved_agents_digest_is_its_weights_and_settings_not_its_files_bytes(tiny_offline, tmp_path):
    from agents.digest import saved_agent_digest

    first, again = small_agent(tiny_offline, seed=3), small_agent(tiny_offline, seed=3)
    first.meta["train_seconds"], again.meta["train_seconds"] = 1.0, 2.0  # the same training, timed twice
    a, b = first.save(tmp_path / "a.pt"), again.save(tmp_path / "b.pt")
    assert a.read_bytes() != b.read_bytes() and saved_agent_digest(a) == saved_agent_digest(b)
    assert saved_agent_digest(small_agent(tiny_offline, seed=4).save(tmp_path / "c.pt")) != saved_agent_digest(a)
    again.meta["dataset"] = "another"  # settings count
    assert saved_agent_digest(again.save(tmp_path / "d.pt")) != saved_agent_digest(a)
    (tmp_path / "bad.pt").write_bytes(a.read_bytes()[:100])
    with pytest.raises(ValueError, match="bad.pt is not a readable saved agent"):
        saved_agent_digest(tmp_path / "bad.pt")


def planted_actions(data):
    """Two mixtures far apart: `good` (all weight near domain 0) and `bad` (near the last domain)."""
    d = len(data.domains)
    good, bad = np.full(d, 0.02), np.full(d, 0.02)
    good[0], bad[-1] = 1.0, 1.0
    return good / good.sum(), bad / bad.sum()


def plant(data: OfflineData, good: np.ndarray, bad: np.ndarray) -> OfflineData:
    """Every episode twice: always `good` (+0.1 a step) and always `bad` (-0.1), in both reward kinds."""
    n = len(data)
    rewards = np.concatenate([np.full(n, 0.1), np.full(n, -0.1)])
    planted = dataclasses.replace(
        data, windows=np.concatenate([data.windows, data.windows]),
        actions=np.concatenate([np.repeat(good[None], n, 0), np.repeat(bad[None], n, 0)]).astype(np.float32),
        rewards=rewards.astype(np.float32), feedback_change=rewards[:, None] * data.feedback_std[None, :],
        terminals=np.concatenate([data.terminals, data.terminals]), timeouts=np.concatenate([data.timeouts, data.timeouts]),
        episode=np.concatenate([data.episode, data.episode + data.episode.max() + 1]),
        quality=np.concatenate([data.quality, data.quality]))
    assert np.allclose(planted.rewards_for("balanced"), planted.rewards, atol=1e-6)
    return planted


def test_rewards_are_the_feedback_change_weighted_like_the_env_or_the_balanced_score(tiny_offline):
    from dmix_gym.scenario import Scenario
    from leaderboard.protocol import Objective

    data = tiny_offline
    env_weights = np.asarray(Scenario.from_dict(data.scenario).weights())
    assert np.allclose(data.feedback_change @ env_weights, data.rewards, atol=1e-4)  # eq. 6, as the env logged it
    balanced = data.rewards_for("balanced")
    for episode in np.unique(data.episode):  # an episode's balanced return is how much its balanced score rose
        steps = data.episode == episode
        d, k = len(data.domains), len(data.fields)
        moved = data.windows[steps][:, -1, d:d + k] * data.feedback_std  # relative features: f_t - f_0
        assert np.allclose(moved[0], 0) and np.allclose(moved[1:], np.cumsum(data.feedback_change[steps], 0)[:-1], atol=1e-4)
        start = data.feedback_mean  # any start: the score is linear in the feedback
        final = start + data.feedback_change[steps].sum(0)
        balanced_score = Objective(tuple(data.feedback_mean), tuple(data.feedback_std)).score
        assert balanced[steps].sum() == pytest.approx(balanced_score(final) - balanced_score(start), abs=1e-4)
    with pytest.raises(ValueError, match="unknown reward 'raw'"):
        data.rewards_for("raw")


def closer_to(mixtures: np.ndarray, good: np.ndarray, bad: np.ndarray) -> float:
    """The fraction of mixtures nearer `good` than `bad` (L1)."""
    return float(np.mean(np.abs(mixtures - good).sum(1) < np.abs(mixtures - bad).sum(1)))


@pytest.mark.parametrize("algo", ["cql", "iql", "td3bc"])
def test_offline_rl_learns_a_planted_reward(tiny_offline, tmp_path, algo):
    from agents.offline_rl import RLSettings, q_values, train_rl

    good, bad = planted_actions(tiny_offline)
    # Every state has both actions logged, so an algorithm that only reweights logged actions (IQL) can still choose.
    planted = plant(tiny_offline, good, bad)
    # 54 transitions: a light conservative weight lets the planted reward, not the penalty, order the two logged actions
    # (with the held-out-text feedback in the states, weight 1.0 ranked 81% of states right at 300 steps, 70% at 600).
    settings = RLSettings(algo, steps=300, steps_per_epoch=150, batch_size=32, critic_d_model=32, critic_ffn=64,
                          conservative_weight=0.2, n_action_samples=4, actor_warmup=50, device="cpu:0",
                          actor_lr=1e-4 if algo == "cql" else 1e-3)  # the regressing actors move within 300 steps
    agent, metrics, trained = train_rl(planted, tmp_path, small_agent(tiny_offline), settings, progress=False)
    states = planted.windows
    q_good = q_values(trained, states, np.repeat(good[None], len(states), 0), settings)
    q_bad = q_values(trained, states, np.repeat(bad[None], len(states), 0), settings)
    assert np.mean(q_good > q_bad) > 0.9
    if algo != "cql":  # IQL and TD3+BC regress toward the logged action the critic rates higher
        with torch.no_grad():
            assert closer_to(agent.net.mixture(torch.from_numpy(states)).numpy(), good, bad) > 0.9
    assert (tmp_path / f"{algo}.pt").exists() and (tmp_path / f"{algo}-checkpoint.d3").exists()
    assert metrics["final"]["steps"] == 300 and np.isfinite(metrics["final"]["critic_loss"])
    assert any(p.name.endswith(".csv") for p in (tmp_path / "d3rlpy_logs").rglob("*"))
    # The trained actor is a TransformerAgent again, and saved.
    loaded = TransformerAgent.load(tmp_path / f"{algo}.pt")
    assert loaded.meta["algo"] == algo
    assert loaded.compute()["device"].startswith("CPU") and loaded.compute()["train_seconds"] > 0  # charged on the board
    with torch.no_grad():
        assert torch.allclose(loaded.net.mixture(torch.from_numpy(states)), agent.net.mixture(torch.from_numpy(states)))
    # Each epoch's actor is kept for model selection; the last one is the final agent.
    assert sorted(p.name for p in (tmp_path / f"{algo}-steps").iterdir()) == ["150.pt", "300.pt"]
    last = TransformerAgent.load(tmp_path / f"{algo}-steps" / "300.pt")
    assert last.meta["steps"] == 300 and all(torch.equal(a, b) for a, b in zip(last.net.state_dict().values(),
                                                                              loaded.net.state_dict().values()))
    # Resuming a finished run trains nothing more and gives the same actor.
    again, metrics2, _ = train_rl(planted, tmp_path, small_agent(tiny_offline), settings, progress=False)
    assert metrics2["final"]["steps"] == 300
    with torch.no_grad():
        assert torch.allclose(again.net.mixture(torch.from_numpy(states)), agent.net.mixture(torch.from_numpy(states)))


def test_bc_imitates_the_logged_mixture(tiny_offline, tmp_path):
    from agents.offline_rl import RLSettings, train_rl

    good, bad = planted_actions(tiny_offline)
    planted = dataclasses.replace(tiny_offline, actions=np.repeat(good[None], len(tiny_offline), 0).astype(np.float32))
    settings = RLSettings("bc", steps=300, steps_per_epoch=150, batch_size=32, actor_lr=1e-3, actor_warmup=20, device="cpu:0")
    agent, metrics, _ = train_rl(planted, tmp_path, small_agent(tiny_offline), settings, progress=False)
    with torch.no_grad():
        mixtures = agent.net.mixture(torch.from_numpy(planted.windows)).numpy()
    assert closer_to(mixtures, good, bad) == 1.0 and np.abs(mixtures - good).sum(1).mean() < 0.3
    assert TransformerAgent.load(tmp_path / "bc.pt").meta["algo"] == "bc"


def test_a_finished_run_restored_from_the_agents_store_is_read_back_not_trained_again(tiny_offline, tmp_path):
    """A fresh machine restores the committed store (metrics and candidates, no checkpoint): the trainers must read
    those runs back, or every new machine spends hours training the same agents again."""
    import subprocess
    import sys

    from agents.digest import saved_agent_digest
    from agents.offline_rl import RLSettings, train_rl

    runs, store = tmp_path / "runs", tmp_path / "store"
    config = SFTConfig(quality=None, epochs=2, batch_size=8, checkpoint_every=1, val_episodes=0.25)
    sft, _ = train_sft(tiny_offline, runs / "agents", SMALL, config, progress=False)
    settings = RLSettings("bc", steps=300, steps_per_epoch=150, batch_size=32, actor_warmup=20, device="cpu:0")
    train_rl(tiny_offline, runs / "agents", sft, settings, progress=False)
    trained = {name: saved_agent_digest(runs / "agents" / name) for name in ("sft.pt", "bc.pt")}
    script = [sys.executable, str(Path(__file__).parents[1] / "benchmarks" / "agents_store.py")]
    subprocess.run([*script, "save", str(runs / "agents"), "--store", str(store)], check=True, capture_output=True)
    assert sorted(p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file()) == [
        "agents/bc-metrics.json", "agents/bc-steps/300.pt", "agents/sft-metrics.json", "agents/sft.pt"]
    shutil.rmtree(runs)
    subprocess.run([*script, "restore", "--store", str(store), "--runs", str(runs)], check=True, capture_output=True)
    stamp = (runs / "agents" / "sft.pt").stat().st_mtime_ns
    again, _ = train_sft(tiny_offline, runs / "agents", SMALL, config, progress=False)
    agent, metrics, algo = train_rl(tiny_offline, runs / "agents", again, settings, progress=False)
    assert algo is None and metrics["final"]["steps"] == 300
    assert not (runs / "agents" / "sft-checkpoint.pt").exists() and not (runs / "agents" / "bc-checkpoint.d3").exists()
    assert (runs / "agents" / "sft.pt").stat().st_mtime_ns == stamp
    assert {name: saved_agent_digest(runs / "agents" / name) for name in trained} == trained
    # Other settings are another run: trained, not read back.
    _, _, algo = train_rl(tiny_offline, runs / "agents", again, dataclasses.replace(settings, seed=1), progress=False)
    assert algo is not None and (runs / "agents" / "bc-checkpoint.d3").exists()


def test_unknown_algorithm_is_named():
    from agents.offline_rl import RLSettings
    from dmix_gym.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown offline RL algorithm 'awac'"):
        RLSettings("awac")
    with pytest.raises(ConfigError, match="unknown reward 'raw'"):
        RLSettings("cql", reward="raw")


@pytest.mark.parametrize("algo", ["cql", "iql", "td3bc", "bc"])
def test_actor_starts_as_the_sft_agent(tiny_offline, algo):
    from agents.offline_rl import RLSettings, actor_from_agent, agent_from_actor, d3rlpy_dataset, make_algo

    settings = RLSettings(algo, critic_d_model=16, critic_ffn=32, device="cpu:0")
    agent = small_agent(tiny_offline, seed=5)
    trained = make_algo(agent, settings)
    trained.build_with_dataset(d3rlpy_dataset(tiny_offline, settings))
    actor_from_agent(trained, agent, settings)
    flat = tiny_offline.windows.reshape(len(tiny_offline), -1)
    # d3rlpy's deterministic action, mapped back to the simplex, is the agent's own mixture.
    with torch.no_grad():
        expected = agent.net.mixture(torch.from_numpy(tiny_offline.windows)).numpy()
    assert np.allclose(from_unit(trained.predict(flat), settings.action_scale), expected, atol=1e-4)
    back = agent_from_actor(trained, agent, settings)
    with torch.no_grad():
        assert np.allclose(back.net.mixture(torch.from_numpy(tiny_offline.windows)).numpy(), expected, atol=1e-5)


def test_rollout_runs_an_agent_in_the_env(tiny_offline, tiny_data):
    import gymnasium as gym

    env = gym.make("DataMix-v0", scenario=tiny_offline.scenario, data_dir=str(tiny_data), progress=False)
    agent = small_agent(tiny_offline)
    episode = rollout(agent, env, seed=0)
    steps = len(episode.rewards)
    assert steps == env.unwrapped.max_steps or episode.terminated
    assert episode.mixtures.shape == (steps + 1, len(tiny_offline.domains))
    assert np.allclose(episode.mixtures.sum(1), 1)
    assert episode.feedback.shape == (steps + 1, 2) and episode.domain_loss.shape[0] == steps + 1
    # Same seed, same agent: the same episode on CPU.
    again = rollout(agent, env, seed=0)
    assert np.array_equal(again.mixtures, episode.mixtures) and np.array_equal(again.rewards, episode.rewards)


def test_agent_refuses_an_env_of_other_fields_and_bridges_other_domains(tiny_offline, tiny_data):
    import gymnasium as gym

    env = gym.make("DataMix-v0", scenario=tiny_offline.scenario, data_dir=str(tiny_data), progress=False)
    renamed = dataclasses.replace(tiny_offline.domain_space, names=("a", "b", "c", "d"))
    stranger = TransformerAgent.create(renamed, np.zeros(2), np.ones(2), SMALL)
    with pytest.raises(ValueError, match="CollapseDomains"):
        stranger.reset(ScenarioInfo.from_env(env))
    # rollout() bridges other domains of the same fields through the source-based space.
    episode = rollout(stranger, env, seed=0)
    assert episode.domains == ("a", "b", "c", "d") and np.allclose(episode.mixtures.sum(1), 1)
    # Fields pair up by role: an agent of another target field (an unseen target) acts by its per-field shares.
    other_target = TransformerAgent.create(dataclasses.replace(renamed, fields=("web", "code"), target_fields=("code",)),
                                           np.zeros(2), np.ones(2), SMALL)
    episode = rollout(other_target, env, seed=0)
    assert episode.fields == env.unwrapped.domain_space.fields and np.allclose(episode.mixtures.sum(1), 1)
    three_fields = TransformerAgent.create(dataclasses.replace(renamed, fields=("web", "code", "law"),
                                                               target_fields=("code", "law")), np.zeros(3), np.ones(3), SMALL)
    with pytest.raises(ValueError, match="no field-by-field match"):
        rollout(three_fields, env, seed=0)


def test_agent_acts_through_collapse_domains_in_the_source_based_space(tiny_offline, tiny_data):
    import gymnasium as gym

    from dmix_gym import CollapseDomains
    from tests.helpers import tiny_spec

    fine_env = gym.make("DataMix-v0", scenario=tiny_offline.scenario, data_dir=str(tiny_data), progress=False)
    fine_space = fine_env.unwrapped.domain_space
    coarse = dataclasses.replace(tiny_scenario(tiny_data), data=tiny_spec(tiny_data, name="tiny-source", domains="source"))
    coarse_env = gym.make("DataMix-v0", scenario=coarse.to_dict(), data_dir=str(tiny_data), progress=False)
    assert coarse_env.unwrapped.num_domains == 2
    episode = rollout(small_agent(tiny_offline), CollapseDomains(coarse_env, to="fine", fine_space=fine_space), seed=0)
    assert episode.domains == fine_space.names and np.allclose(episode.mixtures.sum(1), 1)
    assert len(episode.rewards) >= 1


def test_decision_transformer_follows_the_return_it_is_asked_for(tiny_offline, tiny_data, tmp_path):
    import gymnasium as gym

    from agents.decision_transformer import DTAgent, DTSettings, train_dt
    from dmix_gym.policy import rollout
    from leaderboard.registry import load_policy

    good, bad = planted_actions(tiny_offline)
    planted = plant(tiny_offline, good, bad)
    settings = DTSettings(steps=400, steps_per_epoch=200, batch_size=16, learning_rate=1e-3, context=4, hidden=32,
                          layers=1, dropout=0.0, device="cpu:0", features=SMALL.features)
    agent, metrics = train_dt(planted, tmp_path, settings, progress=False)
    assert metrics["steps"] == 400 and metrics["target_return"] == pytest.approx(metrics["best_logged_return"])
    env = gym.make("DataMix-v0", scenario=tiny_scenario(tiny_data).to_dict(), data_dir=str(tiny_data), progress=False)
    # Asked for the best logged return it starts like the `good` episodes, asked for the worst like the `bad` ones
    # (later steps follow the env's real rewards, which differ from the planted ones, so only the start is exact).
    high = rollout(agent, env, seed=0).mixtures[1:]
    low = DTAgent(agent.algo, agent.domain_space, agent.feedback_mean, agent.feedback_std, settings,
                  target_return=-metrics["best_logged_return"])
    low_mixtures = rollout(low, env, seed=0).mixtures[1:]
    assert closer_to(high[:1], good, bad) == 1.0 and closer_to(low_mixtures[:1], bad, good) == 1.0
    steps = min(len(high), len(low_mixtures))  # leaning on one target domain can use its data up early
    assert np.all(high[:steps, 0] > low_mixtures[:steps, 0])
    loaded = load_policy(tmp_path / "dt.json")  # the leaderboard loads it like any saved policy
    assert isinstance(loaded, DTAgent) and np.allclose(rollout(loaded, env, seed=0).mixtures[1:], high, atol=1e-5)
    again, metrics2 = train_dt(planted, tmp_path, settings, progress=False)  # finished: resumes to nothing more
    assert metrics2["steps"] == 400


def test_every_logged_transition_reaches_d3rlpy_the_last_one_included(tiny_offline):
    """Episodes end by time-out at the horizon (or terminate); d3rlpy drops a time-out episode's last step unless it is
    marked terminal."""
    from agents.offline_rl import RLSettings, d3rlpy_dataset

    assert tiny_offline.timeouts.any()
    dataset = d3rlpy_dataset(tiny_offline, RLSettings("cql"))
    assert dataset.transition_count == len(tiny_offline)
    last = [episode.rewards[-1, 0] for episode in dataset.episodes]
    ends = np.flatnonzero(np.diff(np.append(tiny_offline.episode, -1)) != 0)
    assert np.allclose(last, tiny_offline.rewards_for("balanced")[ends] * RLSettings().reward_scale)
    assert RLSettings().gamma == 1.0  # the ranked score is the undiscounted return over the finite horizon


@pytest.mark.parametrize("algo", ["td3bc", "cql"])
def test_target_networks_start_from_the_initialised_actor(tiny_offline, algo):
    """d3rlpy syncs TD3+BC's target actor when it builds, before the SFT weights are copied in: the copy must reach it."""
    from agents.offline_rl import RLSettings, actor_from_agent, d3rlpy_dataset, make_algo

    settings = RLSettings(algo, critic_d_model=16, critic_ffn=32, device="cpu:0")
    trained = make_algo(small_agent(tiny_offline, seed=5), settings)
    trained.build_with_dataset(d3rlpy_dataset(tiny_offline, settings))
    actor_from_agent(trained, small_agent(tiny_offline, seed=5), settings)
    modules = trained.impl.modules
    if hasattr(modules, "targ_policy"):
        for target, live in zip(modules.targ_policy.parameters(), modules.policy.parameters()):
            assert torch.equal(target, live)
    for target, live in zip(modules.targ_q_funcs.parameters(), modules.q_funcs.parameters()):
        assert torch.equal(target, live)


def test_the_balanced_reward_is_the_v2_objective_increment():
    """The agents learn exactly what dmix-bench-v2 ranks by: its reward weights are the dataset std's 1 / (K std)."""
    from agents.features import reward_weights
    from leaderboard.official import load_official
    from leaderboard.protocol import V2_OBJECTIVE

    std = load_official("dmix-bench-v1")["feedback_std"]  # dataset v1's, which v2 ships as constants
    assert np.allclose(reward_weights("balanced", (0.5, 0.5), std), V2_OBJECTIVE.reward_weights(), rtol=1e-12)


def test_the_support_guard_acts_as_the_agent_inside_and_holds_the_fallback_from_the_first_state_outside(
        tiny_offline, tiny_data, tmp_path):
    import gymnasium as gym

    from agents.support import SupportConfig, SupportGuard, fit_support
    from leaderboard.registry import load_policy

    support = fit_support(tiny_offline, SupportConfig(neighbours=2))
    assert support.inside(tiny_offline.windows[:, -1]).mean() >= 0.95  # the data's own states, by construction
    best = tiny_offline.top_episodes(0.1).actions.mean(0)
    assert np.allclose(support.fallback, best / best.sum())
    env = gym.make("DataMix-v0", scenario=tiny_offline.scenario, data_dir=str(tiny_data), progress=False)
    start, _ = env.reset(seed=0)
    agent = small_agent(tiny_offline)
    guard = SupportGuard(agent, support, str(agent.save(tmp_path / "agent.pt")))
    guard.reset(ScenarioInfo.from_env(env))
    history = History([start], [{}])
    assert np.array_equal(guard.act(history), agent.act(history)) and guard.fired_at is None  # every episode starts here
    far = start.copy()
    far[len(tiny_offline.domains):len(tiny_offline.domains) + 2] += 100.0  # 100 nats better on both fields: never seen
    history.append(far, {})
    assert np.array_equal(guard.act(history), support.fallback) and guard.fired_at == 1
    history.append(start, {})
    assert np.array_equal(guard.act(history), support.fallback)  # held, though this state is inside again
    saved = load_policy(guard.save(tmp_path / "guarded.json"))  # a policy file like any other
    saved.reset(ScenarioInfo.from_env(env))
    assert np.array_equal(saved.act(History([start], [{}])), agent.act(History([start], [{}])))
    (tmp_path / "guarded.support.npz").write_bytes(b"not the support it was saved with")
    with pytest.raises(ConfigError, match="changed since"):
        load_policy(tmp_path / "guarded.json")


def test_the_guard_also_stops_where_the_first_step_moved_the_feedback_unlike_any_logged_first_step(tiny_offline, tiny_data):
    """Another model's dynamics can keep every state in support; the first move for the first mixture shows them."""
    import gymnasium as gym

    from agents.support import SupportConfig, SupportGuard, fit_support

    support = fit_support(tiny_offline, SupportConfig(neighbours=2))
    _, first = np.unique(tiny_offline.episode, return_index=True)
    own = [support.first_move_residual(tiny_offline.actions[i], tiny_offline.feedback_change[i]) for i in first]
    assert np.mean(np.asarray(own) <= support.first_move_radius) >= 0.85  # the data's own first steps
    env = gym.make("DataMix-v0", scenario=tiny_offline.scenario, data_dir=str(tiny_data), progress=False)
    start, _ = env.reset(seed=0)
    d, k = len(tiny_offline.domains), len(tiny_offline.fields)
    mixture = tiny_offline.actions[first[0]]
    for speed, fires in ((1.0, False), (10.0, True)):  # the logged first move, and one ten times as fast
        guard = SupportGuard(small_agent(tiny_offline), dataclasses.replace(support, radius=np.inf))  # states all in
        guard.reset(ScenarioInfo.from_env(env))
        step = start.copy()
        step[:d] = mixture
        step[d:d + k] = start[d:d + k] + speed * tiny_offline.feedback_change[first[0]]
        history = History([start, step], [{}, {}])
        guard.act(history)
        assert (guard.fired_at == 1) == fires


@pytest.mark.filterwarnings("ignore:Number of distinct clusters", "ignore:invalid value encountered in divide")
def test_guarding_a_per_field_agent_reads_its_own_data_in_its_own_feedback_units(two_space_ids, tmp_path):
    """An agent trained across draws, standardised as a benchmark's objective, is guarded on the datasets and space
    it records, in its units: its state tokens are what the guard compares with the support."""
    from agents.support import Support, fit_support
    from dmix.pipeline import guard_agent

    units = ([-5.0, -6.0], [0.2, 1.4])  # a benchmark's, not the first draw's
    data = load_offline(two_space_ids, SMALL.window, SMALL.features, space="source", standardise=units)
    agent, _ = train_sft(data, tmp_path / "agent", SMALL, SFTConfig(quality=None, epochs=1), progress=False)
    path = guard_agent(tmp_path / "agent" / "sft.pt", None, tmp_path / "guarded.json")  # datasets and space: the agent's
    saved = Support.load(tmp_path / "guarded.support.npz")
    assert path == tmp_path / "guarded.json"
    np.testing.assert_array_equal(saved.tokens, fit_support(data).tokens)
    own_units = load_offline(two_space_ids, SMALL.window, SMALL.features, space="source")
    assert not np.allclose(saved.scale, fit_support(own_units).scale)  # the first draw's units would be another support
    with pytest.raises(ConfigError, match="another domain space"):
        guard_agent(tmp_path / "agent" / "sft.pt", two_space_ids, tmp_path / "fine.json", space="fine")
