"""Continual pre-training under FSDP: torchrun on 2 CPU ranks (gloo) matches the env, survives a kill, resumes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import dmix_gym  # noqa: F401
from cpt.models import count_meta_parameters, enable_checkpointing, resolve_model
from dmix_gym.policy import rollout
from dmix_gym.utils.processes import kill_tree
from leaderboard.registry import load_policy
from tests.helpers import tiny_scenario

STEPS = 4
TOKENS = 2048  # 32 sequences of 64 tokens a step: the tiny corpus lasts 4 steps


def test_llama_3b_dry_run_has_3b_parameters():
    for vocab in (4096, 8192):
        choice = resolve_model("llama-3b", vocab, 512)
        assert choice.config.num_hidden_layers == 32
        assert 3.0e9 <= count_meta_parameters(choice.config) <= 3.3e9


def test_the_10x_model_is_at_least_8x_the_cpu_proxy():
    import torch

    from cpt.models import LLAMA_10X_PROXY
    from dmix_gym.model import build_model, llama_config
    from dmix_gym.scenario import PRESETS, ProxyConfig

    proxy = sum(p.numel() for p in build_model(llama_config(PRESETS["cpu"][0], 4096, 128), 0, torch.device("cpu")).parameters())
    big = count_meta_parameters(resolve_model("llama-10x", 4096, 128).config)
    assert 8 * proxy <= big <= 12 * proxy and big >= 15e6
    as_proxy = sum(p.numel() for p in build_model(llama_config(ProxyConfig(**LLAMA_10X_PROXY), 4096, 128), 0,
                                                  torch.device("meta")).parameters())
    assert as_proxy == big  # the env's model and dmix cpt's are the same
    from cpt.run import CPTConfig

    assert CPTConfig("baseline:uniform", model="llama-10x").make_scenario().model == ProxyConfig(**LLAMA_10X_PROXY)


def test_a_protocol_objective_sets_the_reward_weights_of_a_cpt_run():
    from cpt.run import CPTConfig
    from dmix_gym.errors import ConfigError
    from leaderboard.protocol import V2_OBJECTIVE

    scenario = CPTConfig("baseline:mixing-laws", objective="dmix-bench-v2").make_scenario()
    assert scenario.reward_weights == pytest.approx(V2_OBJECTIVE.reward_weights())
    assert CPTConfig("baseline:mixing-laws").make_scenario().reward_weights != scenario.reward_weights
    ten_x = CPTConfig("baseline:mixing-laws", model="llama-10x", objective="dmix-bench-v2")
    assert ten_x.make_scenario().model != scenario.model
    assert ten_x.proxy_scenario() == scenario  # one-off work (Mixing laws' runs) at proxy scale, as on the leaderboard
    from baselines.cache import scenario_key
    from cpt.run import seen_as_proxy
    from dmix_gym.policy import ScenarioInfo

    at_10x = ScenarioInfo(json.loads(ten_x.make_scenario().to_json()), None, 20)
    on_proxy = ScenarioInfo(json.loads(scenario.to_json()), None, 20)
    assert scenario_key(at_10x) != scenario_key(on_proxy)  # a fit made on the proxy is not found under the 10x scenario
    assert scenario_key(seen_as_proxy(at_10x, ten_x)) == scenario_key(on_proxy)  # ... unless the policy sees the proxy's
    with pytest.raises(ConfigError, match="dmix-bench-v1.*no objective"):
        CPTConfig("baseline:uniform", objective="dmix-bench-v1").make_scenario()


def test_checkpointing_recomputes_the_same_gradients_without_a_deprecation_warning():
    import warnings

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=16)
    ids = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(0))

    def grads(checkpointing: bool) -> list[torch.Tensor]:
        torch.manual_seed(0)
        net = LlamaForCausalLM(config).train()
        if checkpointing:
            with warnings.catch_warnings():
                warnings.simplefilter("error", FutureWarning)
                enable_checkpointing(net)
            on = net.is_activation_checkpointing if hasattr(net, "is_activation_checkpointing") \
                else net.is_gradient_checkpointing
            assert on and not net.config.use_cache
        net(input_ids=ids, labels=ids).loss.backward()
        return [p.grad for p in net.parameters()]

    for plain, recomputed in zip(grads(False), grads(True), strict=True):
        torch.testing.assert_close(recomputed, plain)


def test_model_choices_are_checked(tmp_path):
    assert resolve_model("proxy", 512, 64).config is None
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                                  "num_attention_heads": 2, "num_key_value_heads": 2}))
    assert resolve_model(str(config), 512, 64).config.vocab_size == 512
    config.write_text(json.dumps({"hidden_size": 32, "vocab_size": 32000}))
    with pytest.raises(ValueError, match="vocab_size 32000"):
        resolve_model(str(config), 512, 64)
    with pytest.raises(ValueError, match="llama-3b"):
        resolve_model("gpt-9", 512, 64)


def _launch(scenario: Path, data: Path, out: Path, cache: Path, ranks: int = 2, device: str = "cpu",
            extra: tuple[str, ...] = (), policy: str = "baseline:dbl") -> subprocess.Popen:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(ranks),
               "--master-port", str(29000 + os.getpid() % 500),
               "-m", "dmix", "cpt", "--scenario", str(scenario), "--policy", policy, "--max-steps", str(STEPS),
               "--tokens-per-step", str(TOKENS), "--data-dir", str(data), "--cache-dir", str(cache), "--out", str(out),
               "--device", device, *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1]),
           "GLOO_SOCKET_IFNAME": "lo"}  # one host: loopback, whatever the hostname resolves to
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _finish(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=400)
    assert process.returncode == 0, output[-3000:]
    return output


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_torchrun_fsdp_run_matches_the_env_and_resumes_after_a_kill(tiny_data, tmp_path):
    scenario_file = tmp_path / "scenario.json"
    scenario = tiny_scenario(tiny_data)
    scenario_file.write_text(scenario.to_json())
    cache = Path(os.environ["DMIX_CACHE_DIR"])

    whole = tmp_path / "whole"
    _finish(_launch(scenario_file, tiny_data, whole, cache))
    expected = _records(whole)
    assert len(expected) == STEPS and (whole / "checkpoints" / f"step-{STEPS:06d}").is_dir()
    assert list((whole / "tensorboard").glob("events.out.tfevents.*"))

    # The same run, killed (SIGKILL to every process) once its second step is logged, then launched again.
    killed = tmp_path / "killed"
    process = _launch(scenario_file, tiny_data, killed, cache)
    deadline = time.time() + 300
    while time.time() < deadline and not ((killed / "metrics.jsonl").exists() and len(_records(killed)) >= 2):
        assert process.poll() is None, process.communicate()[0][-3000:]
        time.sleep(0.02)
    kill_tree(process.pid)
    process.wait()
    time.sleep(1.0)
    logged = len(_records(killed))
    assert logged < STEPS, "the run ended before it could be killed"
    complete = sorted(p.name for p in (killed / "checkpoints").glob("step-*"))
    output = _finish(_launch(scenario_file, tiny_data, killed, cache))
    assert f"resumed from {complete[-1]}: {int(complete[-1][5:])} of" in output
    resumed = _records(killed)
    assert [r["step"] for r in resumed] == list(range(1, STEPS + 1))
    for a, b in zip(resumed, expected):  # same data order, same mixtures, same training
        assert a["tokens"] == b["tokens"] and a["policy_mixture"] == b["policy_mixture"]
        assert a["reward"] == pytest.approx(b["reward"], abs=1e-6) and a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-6)

    # The mixture drawn each step is the one the policy chose, and 2 FSDP ranks train as the single-process env does.
    env = gym.make("DataMix-v0", scenario={**scenario.to_dict(), "train": {**scenario.to_dict()["train"], "max_steps": STEPS,
                                                                            "tokens_per_step": TOKENS}},
                   data_dir=str(tiny_data), progress=False)
    episode = rollout(load_policy("baseline:dbl"), env, seed=0)
    sequences = TOKENS // env.unwrapped.shards.seq_len
    # Until a domain runs short (the tiny corpus does by the last step), the drawn mixture is the chosen one.
    assert np.allclose(expected[0]["drawn_mixture"], expected[0]["policy_mixture"], atol=1.0 / sequences + 1e-6)
    for t, record in enumerate(expected, 1):
        assert record["tokens"] == episode.tokens[t - 1].tolist()
        assert np.allclose(record["policy_mixture"], episode.mixtures[t], atol=1e-5)
        assert record["reward"] == pytest.approx(episode.rewards[t - 1], abs=1e-4)


def test_torchrun_trains_a_users_gpt2_with_its_own_tokenizer_as_the_env_does(tiny_data, tmp_path):
    """Bring your own model: a GPT-2 directory with its own tokenizer (never LLaMA, never dmix's tokenizer) runs
    `dmix cpt` on 2 FSDP ranks, step for step like DataMix-v0 on the same model."""
    from tests.test_hf_model import corpus_texts, save_model, train_tokenizer

    model = save_model(tmp_path / "my-gpt2", "gpt2", train_tokenizer(corpus_texts(tiny_data), 400))
    scenario_file = tmp_path / "scenario.json"
    scenario = tiny_scenario(tiny_data)
    scenario_file.write_text(scenario.to_json())
    out = tmp_path / "run"
    # Uniform: a policy with no proxy-scale one-off work (DBL's reference losses would come from the proxy in
    # `dmix cpt` and from the GPT-2 in the env), so the two runs must agree exactly.
    _finish(_launch(scenario_file, tiny_data, out, Path(os.environ["DMIX_CACHE_DIR"]), extra=("--model", str(model)),
                    policy="baseline:uniform"))
    records = _records(out)
    env = gym.make("DataMix-v0", scenario={**scenario.to_dict(), "train": {**scenario.to_dict()["train"], "max_steps": STEPS,
                                                                            "tokens_per_step": TOKENS}},
                   data_dir=str(tiny_data), progress=False, model=str(model))
    assert type(env.unwrapped.model).__name__ == "GPT2LMHeadModel"
    episode = rollout(load_policy("baseline:uniform"), env, seed=0)
    assert len(records) == STEPS
    for t, record in enumerate(records, 1):
        assert record["tokens"] == episode.tokens[t - 1].tolist()
        assert record["reward"] == pytest.approx(episode.rewards[t - 1], abs=1e-4)


@pytest.mark.gpu
def test_torchrun_fsdp_run_on_every_gpu(tiny_data, tmp_path):
    # NCCL, bf16 mixed precision and activation checkpointing: what CPU ranks (gloo, fp32) never exercise.
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    scenario_file = tmp_path / "scenario.json"
    scenario_file.write_text(tiny_scenario(tiny_data).to_json())
    out = tmp_path / "gpu"
    _finish(_launch(scenario_file, tiny_data, out, Path(os.environ["DMIX_CACHE_DIR"]), torch.cuda.device_count(), "cuda"))
    records = _records(out)
    assert [r["step"] for r in records] == list(range(1, STEPS + 1))
    assert all(np.isfinite(r["reward"]) and np.isfinite(r["train_loss"]) for r in records)
    assert (out / "checkpoints" / f"step-{STEPS:06d}").is_dir()
