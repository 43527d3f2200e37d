"""The proxy LM: a transformers LlamaForCausalLM built from a ProxyConfig."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from .scenario import ProxyConfig


def llama_config(proxy: ProxyConfig, vocab_size: int, seq_len: int, pad_id: int | None = None, eos_id: int | None = None) -> LlamaConfig:
    """The LlamaConfig of a proxy of this shape."""
    if proxy.hidden_size % proxy.num_heads:
        raise ValueError(f"hidden_size {proxy.hidden_size} is not divisible by num_heads {proxy.num_heads}")
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=proxy.hidden_size,
        intermediate_size=proxy.intermediate_size,
        num_hidden_layers=proxy.num_layers,
        num_attention_heads=proxy.num_heads,
        num_key_value_heads=proxy.num_heads,
        max_position_embeddings=seq_len,
        tie_word_embeddings=proxy.tie_embeddings,
        pad_token_id=pad_id,
        eos_token_id=eos_id,
        bos_token_id=eos_id,
        attn_implementation="sdpa",
    )


def build_model(config: LlamaConfig, seed: int, device: torch.device) -> LlamaForCausalLM:
    """A freshly initialised proxy, deterministic under `seed`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model.to(device)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def train_flops_per_token(config: LlamaConfig, seq_len: int) -> float:
    """Model FLOPs per trained token (6N for the weights plus attention), as nanoGPT/PaLM count them."""
    n = config.num_hidden_layers
    d = config.hidden_size
    params = n * (4 * d * d + 3 * d * config.intermediate_size) + config.vocab_size * d  # matmul weights incl. lm head
    return 6.0 * params + 12.0 * n * d * seq_len
