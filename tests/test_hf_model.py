"""A user's own Hugging Face model in DataMix-v0: another architecture, its own tokenizer, the same domain space.

The tests make their models and tokenizers (`save_pretrained` of a tiny GPT-2 and a tiny LLaMA, tokenizers trained
here on the tiny corpus): nothing is downloaded.
"""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

import dmix_gym  # noqa: F401
from dmix_gym.data.build import build_data
from dmix_gym.errors import ConfigError
from tests.helpers import tiny_scenario


def train_tokenizer(texts: list[str], vocab_size: int, eos: str | None = "</s>"):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = [eos] if eos else []
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                        show_progress=False))
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eos) if eos else PreTrainedTokenizerFast(tokenizer_object=tok)


def corpus_texts(tiny_data) -> list[str]:
    import gzip

    lines = (tiny_data / "general" / "a.jsonl").read_text().splitlines()
    lines += gzip.open(tiny_data / "math" / "m.jsonl.gz", "rt").read().splitlines()
    return [json.loads(line)["text"] for line in lines]


def save_model(folder, kind: str, tokenizer, context: int = 256):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    vocab = len(tokenizer)
    if kind == "gpt2":
        # no dropout, so that a run on 2 ranks can be compared with the single-process env step for step
        model = GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_positions=context, n_embd=32, n_layer=2, n_head=2,
                                           resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                           eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id))
    else:
        model = LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                             num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=context))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def gpt2_dir(tiny_data, tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("gpt2"), "gpt2", train_tokenizer(corpus_texts(tiny_data), 400))


def test_another_architecture_with_its_own_tokenizer_runs_an_episode(tiny_data, gpt2_dir):
    env = gym.make("DataMix-v0", scenario=tiny_scenario(tiny_data).to_dict(), data_dir=str(tiny_data), progress=False,
                   model=str(gpt2_dir))
    base = env.unwrapped
    assert type(base.model).__name__ == "GPT2LMHeadModel"
    obs, info = env.reset(seed=0)
    start = info["feedback"].copy()
    total = 0.0
    for _ in range(base.max_steps):
        obs, reward, terminated, truncated, info = env.step(base.p_star)
        total += reward
        if terminated or truncated:
            break
    assert np.all(np.isfinite(info["feedback"])) and not np.allclose(info["feedback"], start)
    assert total == pytest.approx(float(np.dot(base.weights, info["feedback"] - start)), abs=1e-5)
    again = gym.make("DataMix-v0", scenario=tiny_scenario(tiny_data).to_dict(), data_dir=str(tiny_data), progress=False,
                     model=str(gpt2_dir))
    _, info_again = again.reset(seed=0)
    assert np.allclose(info_again["feedback"], start)  # every episode starts from the model's own weights
    assert base.scenario.hf_model == str(gpt2_dir)  # and the scenario (so a Minari dataset) records the model


def test_the_lasting_share_is_counted_in_the_models_own_sequences(tiny_data, gpt2_dir):
    from dmix_gym.sampler import steps_lasted
    from leaderboard.oracle import lasting_share
    from leaderboard.protocol import Task

    scenario = tiny_scenario(tiny_data, target_fraction=0.5, max_steps=6, hf_model=str(gpt2_dir))
    share = lasting_share(Task("scarce", scenario.to_json(), "smoke", (1,)), str(tiny_data))
    base = gym.make("DataMix-v0", scenario=scenario.to_dict(), data_dir=str(tiny_data), progress=False).unwrapped
    per_step = base.sampler.sequences_per_step
    lasted = {s: steps_lasted(base.sampler, (1 - s) * base.p0 + s * base.p_star, 6) for s in (share, share + 1 / per_step)}
    assert lasted[share] == 6 and lasted[share + 1 / per_step] < 6  # the env's own sampler, on the model's build


def test_the_domain_space_is_the_same_under_every_tokenizer(tiny_data, gpt2_dir, tmp_path):
    spec = tiny_scenario(tiny_data).data
    own = build_data(spec, str(tiny_data), progress=False)
    llama = save_model(tmp_path / "llama", "llama", train_tokenizer(corpus_texts(tiny_data), 600))
    from dmix_gym.hf_model import load_hf_model

    builds = [build_data(spec, str(tiny_data), progress=False, tokenizer=load_hf_model(path).tokenizer)
              for path in (gpt2_dir, llama)]
    assert len({b.root for b in [own, *builds]}) == 3  # a folder per tokenizer
    for build in builds:
        assert build.domain_space == own.domain_space
        for mine, theirs in zip(build.manifest["domains"], own.manifest["domains"]):
            assert (mine["name"], mine["documents"], mine["heldout_documents"]) == \
                   (theirs["name"], theirs["documents"], theirs["heldout_documents"])
        assert build.eval_pairs == own.eval_pairs and build.probe_pairs == own.probe_pairs
    assert builds[0].manifest["tokenizer"]["vocab_size"] != builds[1].manifest["tokenizer"]["vocab_size"]


def test_models_that_do_not_fit_are_one_clear_line(tiny_data, tmp_path):
    from transformers import ViTConfig

    from dmix_gym.errors import MissingFileError
    from dmix_gym.hf_model import load_hf_model

    texts = corpus_texts(tiny_data)
    with pytest.raises(MissingFileError, match="not a Hugging Face model directory"):
        load_hf_model(tmp_path)
    ViTConfig().save_pretrained(tmp_path / "vit")
    with pytest.raises(ConfigError, match="is a 'vit' model, not a causal LM"):
        load_hf_model(tmp_path / "vit")
    no_eos = save_model(tmp_path / "no-eos", "llama", train_tokenizer(texts, 300, eos=None))
    with pytest.raises(ConfigError, match="has no EOS token"):
        load_hf_model(no_eos)
    short = save_model(tmp_path / "short", "gpt2", train_tokenizer(texts, 300), context=16)
    with pytest.raises(ConfigError, match="reads at most 16 tokens, shorter than the scenario's 64"):
        gym.make("DataMix-v0", scenario=tiny_scenario(tiny_data).to_dict(), data_dir=str(tiny_data), progress=False,
                 model=str(short))
