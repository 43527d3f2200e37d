"""A user's own Hugging Face causal LM as the env's model: any architecture transformers' Auto classes load (LLaMA,
GPT-2, Qwen2, ...), with its own tokenizer.

The scenario's data is then tokenized with the model's tokenizer (`dmix_gym.data.build.build_data(tokenizer=...)`):
the same documents, domains, held-out documents and evaluation pairs as the scenario's own build, so a policy acts in
the same domain space and the feedback is measured in the model's tokens.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError, MissingFileError

CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")


@dataclass(frozen=True)
class HFModel:
    """A causal-LM directory: its config and tokenizer, checked to fit DataMix-v0."""

    path: Path
    config: Any  # transformers.PretrainedConfig
    tokenizer: Any  # transformers.PreTrainedTokenizerBase, with an EOS (and a PAD, EOS when it has none)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def tokenizer_id(self) -> str:
        return tokenizer_fingerprint(self.tokenizer)


def context_length(config) -> int | None:
    """The longest sequence the model's positions cover (None: not stated, e.g. rotary models without a limit)."""
    for key in CONTEXT_KEYS:
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def tokenizer_fingerprint(tokenizer) -> str:
    """A short hash of what the tokenizer maps text to: its vocabulary, merges and special tokens."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    special = json.dumps({k: str(v) for k, v in sorted(tokenizer.special_tokens_map.items())})
    return hashlib.sha256((text + special).encode()).hexdigest()[:12]


def load_hf_model(path: str | Path, min_context: int = 0) -> HFModel:
    """The model directory at `path`, or a one-line error naming what is wrong with it."""
    from transformers import AutoConfig, AutoTokenizer
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    path = Path(path)
    if not path.is_dir() or not (path / "config.json").is_file():
        raise MissingFileError(f"{path} is not a Hugging Face model directory (no config.json)")
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError, KeyError) as error:
        raise ConfigError(f"{path}/config.json does not load: {error}") from None
    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ConfigError(f"{path} is a {config.model_type!r} model, not a causal LM (AutoModelForCausalLM has no class for it)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, TypeError) as error:
        raise ConfigError(f"{path} has no tokenizer AutoTokenizer can load: {error}") from None
    if tokenizer.eos_token_id is None:
        raise ConfigError(f"the tokenizer of {path} has no EOS token: dmix separates documents and starts questions with it")
    if tokenizer.pad_token_id is None:  # padding sits after every answer and is never scored: EOS serves
        tokenizer.pad_token = tokenizer.eos_token
    if len(tokenizer) > config.vocab_size:
        raise ConfigError(f"the tokenizer of {path} has {len(tokenizer)} tokens, its model's vocabulary {config.vocab_size}")
    context = context_length(config)
    if context is not None and context < min_context:
        raise ConfigError(f"model {path} reads at most {context} tokens, shorter than the scenario's {min_context} "
                          "(its sequence length, or its longest question and answer)")
    return HFModel(path, config, tokenizer)
