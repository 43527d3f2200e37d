"""The base checkpoint: cached on first use, and read from the package where it ships."""

import gymnasium as gym
import pytest
import torch
from safetensors.torch import save_file

import dmix_gym  # noqa: F401
from dmix_gym import base_checkpoint as base_module
from tests.helpers import tiny_scenario


def test_a_shipped_base_is_used_instead_of_pre_training(tiny_data, tmp_path, monkeypatch):
    env = gym.make("DataMix-v0", scenario=tiny_scenario(tiny_data).to_dict(), data_dir=str(tiny_data), progress=False,
                   cache_dir=str(tmp_path / "first")).unwrapped
    args = (env.scenario, env.shards, env.model_config, env.device)
    trained = base_module.load_or_pretrain_base(*args, cache_dir=tmp_path / "first", progress=False)
    shipped = {k: v + 1.0 for k, v in trained.items()}  # not what pre-training gives, to tell them apart
    folder = tmp_path / "package" / base_module.base_dir(*args).name
    folder.mkdir(parents=True)
    save_file({k: v.clone() for k, v in shipped.items()}, folder / "model.safetensors")
    monkeypatch.setattr(base_module, "SHIPPED_BASES", tmp_path / "package")
    monkeypatch.setattr(base_module, "pretrain_base", lambda *a, **k: pytest.fail("pre-trained a shipped base"))
    loaded = base_module.load_or_pretrain_base(*args, cache_dir=tmp_path / "fresh", progress=False)
    assert all(torch.equal(loaded[k], shipped[k]) for k in shipped)
    # The shipped one comes first even where the cache holds one of the same key (another machine's, an older
    # build's): the official results were measured from the shipped weights.
    again = base_module.load_or_pretrain_base(*args, cache_dir=tmp_path / "first", progress=False)
    assert all(torch.equal(again[k], shipped[k]) for k in shipped)


@pytest.mark.slow
def test_every_cpu_protocol_task_finds_its_base_shipped(monkeypatch):
    from leaderboard.protocol import DEFAULT_PROTOCOL, get_protocol

    monkeypatch.setattr(base_module, "pretrain_base", lambda *a, **k: pytest.fail("a default-protocol task's base is not shipped"))
    for task in get_protocol(DEFAULT_PROTOCOL).tasks:
        env = task.make_env(device="cpu").unwrapped
        assert (base_module.SHIPPED_BASES / base_module.base_dir(env.scenario, env.shards, env.model_config,
                                                                  env.device).name / "model.safetensors").exists()
