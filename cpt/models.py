"""Which model continual pre-training trains: the scenario's proxy, `llama-3b`, a LlamaConfig JSON or a HF model dir
(any causal-LM architecture; with its tokenizer, the data is tokenized with it, see `dmix_gym.hf_model`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from dmix_gym.errors import ConfigError, MissingFileError
from dmix_gym.hf_model import load_hf_model

# The paper's target models: LLaMA-3 architecture, 32 layers, 3B parameters (section 4.1, appendix D.1).
LLAMA_3B = {
    "hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 32, "num_attention_heads": 24,
    "num_key_value_heads": 8, "rope_theta": 500_000.0, "rms_norm_eps": 1e-5, "tie_word_embeddings": True,
}


# Ten times the `cpu` proxy (1.84M parameters): a 17.3M-parameter LLaMA (9.4x) on the data's 4,096-token vocabulary, the model
# that tests whether a policy learned on cpu proxies helps a larger one. As a proxy shape: hidden_size=384, num_layers=8,
# num_heads=6, intermediate_size=1024 (`LLAMA_10X_PROXY`, scenario overrides giving DataMix-v0 the same model).
LLAMA_10X_PROXY = {"hidden_size": 384, "num_layers": 8, "num_heads": 6, "intermediate_size": 1024}
LLAMA_10X = {"hidden_size": 384, "intermediate_size": 1024, "num_hidden_layers": 8, "num_attention_heads": 6,
             "num_key_value_heads": 6, "tie_word_embeddings": False}


@dataclass(frozen=True)
class ModelChoice:
    """A model to train: its config, and where its start weights come from."""

    name: str
    config: LlamaConfig | None  # None: the scenario's proxy (DataMix-v0's own model)
    weights: Path | None = None  # a HF model dir with safetensors; None with a config: random init


def resolve_model(spec: str, vocab_size: int, seq_len: int, pad_id: int | None = None, eos_id: int | None = None) -> ModelChoice:
    """`proxy` (the scenario's proxy from its base checkpoint), `llama-3b`, a LlamaConfig JSON file, or a HF model dir.

    Token ids come from the data's tokenizer, so a model's vocabulary must be that tokenizer's.
    """
    common = {"vocab_size": vocab_size, "max_position_embeddings": seq_len, "pad_token_id": pad_id,
              "eos_token_id": eos_id, "bos_token_id": eos_id}
    if spec == "proxy":
        return ModelChoice("proxy", None)
    if spec == "llama-3b":
        return ModelChoice("llama-3b", LlamaConfig(**LLAMA_3B, **common, attn_implementation="sdpa"))
    if spec == "llama-10x":  # `dmix cpt` trains it as the scenario's proxy reshaped, from its base checkpoint
        return ModelChoice("llama-10x", LlamaConfig(**LLAMA_10X, **common, attn_implementation="sdpa"))
    path = Path(spec)
    if path.is_file() and path.suffix == ".json":
        fields = json.loads(path.read_text())
        if fields.get("vocab_size", vocab_size) != vocab_size:
            raise ConfigError(f"{path} has vocab_size {fields['vocab_size']}, but the data's tokenizer has {vocab_size}; "
                             "drop vocab_size from the file or use the data's")
        config = LlamaConfig(**{**fields, **common})
        config._attn_implementation = "sdpa"
        return ModelChoice(path.stem, config)
    if path.is_dir():
        if not (path / "config.json").exists():
            raise MissingFileError(f"{path} has no config.json: not a Hugging Face model dir")
        if not any(path.glob("*.safetensors")):
            raise MissingFileError(f"{path} has no *.safetensors weights")
        config = load_hf_model(path).config if is_hf_model_dir(path) else LlamaConfig.from_pretrained(path)
        if config.vocab_size < vocab_size:
            raise ConfigError(f"model {path} has a vocabulary of {config.vocab_size} tokens, the data's tokenizer "
                             f"{vocab_size}: its token ids would mean nothing to it; give the directory its tokenizer, "
                             "and dmix tokenizes the data with it")
        config._attn_implementation = "sdpa"
        return ModelChoice(path.name, config, path)
    raise ConfigError(f"--model {spec!r} is none of: proxy, llama-10x, llama-3b, a LlamaConfig .json file, a Hugging Face model dir")


def is_hf_model_dir(path: str | Path) -> bool:
    """Whether `path` is a model directory with its own tokenizer (the data is then tokenized with it)."""
    path = Path(path)
    return path.is_dir() and (path / "config.json").is_file() and any(
        (path / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json"))


def build_on_meta(config) -> torch.nn.Module:
    """A causal LM of this config on the meta device (no memory used): LLaMA, or any architecture transformers has."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return LlamaForCausalLM(config) if isinstance(config, LlamaConfig) else AutoModelForCausalLM.from_config(config)


def enable_checkpointing(net: torch.nn.Module) -> None:
    """Recompute each block's activations in backward instead of storing them (non-reentrant), and stop caching
    keys and values, which checkpointing cannot keep: through `activation_checkpointing_enable` where this
    transformers has it (5.x deprecates `gradient_checkpointing_enable`), the old name otherwise."""
    net.config.use_cache = False
    enable = getattr(net, "activation_checkpointing_enable", None)
    if enable is not None:
        enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        net.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def count_meta_parameters(config) -> int:
    """Parameters of a model of this config, instantiated on the meta device (no memory used)."""
    return sum(p.numel() for p in build_on_meta(config).parameters())


@dataclass(frozen=True)
class MemoryEstimate:
    parameters: int
    gpus: int
    sharded_state_gib: float  # fp32 weights + grads + AdamW moments, sharded over GPUs
    gathered_layers_gib: float  # bf16 weights of the layers FSDP holds unsharded (current + prefetched)
    activations_gib: float  # with activation checkpointing: layer inputs + one layer's internals + logits

    @property
    def total_gib(self) -> float:
        return self.sharded_state_gib + self.gathered_layers_gib + self.activations_gib


def memory_per_gpu(config: LlamaConfig, parameters: int, gpus: int, micro_batch: int, seq_len: int) -> MemoryEstimate:
    """A per-GPU memory estimate of FSDP training with bf16 compute and activation checkpointing."""
    gib = 2.0**30
    d, f, n = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    layer = 2 * d * d + 2 * d * (d * config.num_key_value_heads // config.num_attention_heads) + 3 * d * f
    tokens = micro_batch * seq_len
    activations = (n * tokens * d * 2  # checkpointed layer inputs, bf16
                   + tokens * (10 * d + 4 * f) * 2  # one layer recomputed in backward
                   + tokens * config.vocab_size * (2 + 4 + 4))  # logits bf16, fp32 upcast and its gradient
    return MemoryEstimate(parameters, gpus, 16.0 * parameters / gpus / gib, 2 * 2.0 * layer / gib, activations / gib)
