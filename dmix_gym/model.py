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


def build_model(config, seed: int, device: torch.device) -> torch.nn.Module:
    """A freshly initialised causal LM of this config (the proxy's LlamaConfig, or a user model's), deterministic
    under `seed`."""
    from transformers import AutoModelForCausalLM

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config) if isinstance(config, LlamaConfig) else AutoModelForCausalLM.from_config(config)
    return model.to(device)


def load_pretrained_weights(path, device: torch.device) -> dict[str, torch.Tensor]:
    """The weights of a Hugging Face causal-LM directory, as a state dict (the start of every episode on it)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    return {k: v.detach().to(device).contiguous() for k, v in model.state_dict().items()}


def backbone_and_head(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(the decoder stack, the LM head) of a causal LM: any transformers model, or dmix's StackedLlama."""
    if hasattr(model, "get_output_embeddings") and model.get_output_embeddings() is not None:
        return model.base_model, model.get_output_embeddings()
    return model.model, model.lm_head


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def train_flops_per_token(config, seq_len: int) -> float:
    """Model FLOPs per trained token, as nanoGPT/PaLM count them: 6 per matmul weight (the LM head's included, tied or
    not; embedding lookups are free) plus attention's 12 n d L. Counted on a meta-device model, so any architecture."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(config) if isinstance(config, LlamaConfig) else AutoModelForCausalLM.from_config(config)
    lookups = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    matmul = sum(p.numel() for p in model.parameters() if p.ndim >= 2 and id(p) not in lookups)
    head = model.get_output_embeddings()
    if head is not None and id(head.weight) in lookups:  # tied: the embedding matrix is also the LM head's matmul
        matmul += head.weight.numel()
    return 6.0 * matmul + 12.0 * config.num_hidden_layers * config.hidden_size * seq_len
