"""The base checkpoint: the proxy pre-trained once on the source field, cached by config hash.

The built-in scenarios' CPU base checkpoints at the `cpu` preset (the default protocol's tasks) ship
in the package (`dmix_gym/checkpoints/`), so a fresh machine skips pre-training them; any other is
pre-trained on first use. `benchmarks/ship_tasks.py` writes the shipped ones.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from .data.shards import ShardSet
from .model import build_model
from .scenario import Scenario
from .trainer import ProxyTrainer
from .utils.atomic import atomic_dir, stable_hash
from .utils.paths import resolve_cache_dir


def base_key(scenario: Scenario, shards: ShardSet, vocab_size: int, device: torch.device) -> str:
    """Identity of a base checkpoint: model shape, the source field's training tokens, pre-training budget, seed and
    device kind. Evaluation sets, probes and feedback kinds do not change it."""
    t = scenario.train
    source = [(e["sha256"], e["train_sequences"]) for e, f in zip(shards.manifest["domains"], shards.domain_space.field_of)
              if f == 0]
    return stable_hash({
        "model": scenario.model.__dict__, "vocab": vocab_size, "tokenizer": shards.manifest["tokenizer"]["hash"],
        "source_shards": source, "seq_len": shards.seq_len, "tokens": t.base_tokens, "lr": t.base_lr,
        "micro_batch": t.micro_batch, "seed": scenario.seed, "device": device.type, "version": 2,
    })


def source_sequences(shards: ShardSet) -> list[tuple[int, int]]:
    """(domain, index) of every training sequence of the source field."""
    space = shards.domain_space
    return [(d, i) for d in range(space.size) if space.field_of[d] == 0 for i in range(shards.train_sequences(d))]


def gather(shards: ShardSet, picks: list[tuple[int, int]]) -> torch.Tensor:
    """(N, L) int64 token ids of the picked sequences."""
    return torch.from_numpy(np.stack([shards.sequence(d, i) for d, i in picks]).astype(np.int64))


def pretrain_base(scenario: Scenario, shards: ShardSet, config, device: torch.device, progress: bool = True) -> dict[str, torch.Tensor]:
    """Train a fresh proxy on the source field for `base_tokens` tokens (epochs over it if needed)."""
    t = scenario.train
    model = build_model(config, scenario.seed, device)
    n_seq = max(1, t.base_tokens // shards.seq_len)
    total_steps = math.ceil(n_seq / t.micro_batch)
    # The base is the same whatever schedule the episodes use (base_key leaves the episode's schedule out).
    trainer = ProxyTrainer(model, replace(t, lr_schedule="cosine"), total_steps, t.base_lr)
    pool = source_sequences(shards)
    rng = np.random.default_rng(scenario.seed)
    order = np.concatenate([rng.permutation(len(pool)) for _ in range(math.ceil(n_seq / len(pool)))])[:n_seq]
    chunk = t.micro_batch * 8
    bar = tqdm(total=n_seq * shards.seq_len, desc="pre-train base proxy", unit="tok", unit_scale=True, disable=not progress)
    for start in range(0, n_seq, chunk):
        stats = trainer.train_on(gather(shards, [pool[i] for i in order[start : start + chunk]]))
        bar.update(stats["tokens"])
        bar.set_postfix(loss=f"{stats['loss']:.3f}")
    bar.close()
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


SHIPPED_BASES = Path(__file__).resolve().parent / "checkpoints"


def base_dir(scenario: Scenario, shards: ShardSet, config, device: torch.device, cache_dir: str | Path | None = None) -> Path:
    """Where this scenario's base checkpoint is cached."""
    return resolve_cache_dir(cache_dir) / "checkpoints" / f"base-{base_key(scenario, shards, config.vocab_size, device)}"


def load_or_pretrain_base(scenario: Scenario, shards: ShardSet, config, device: torch.device,
                          cache_dir: str | Path | None = None, progress: bool = True) -> dict[str, torch.Tensor]:
    """The shipped (or cached) base checkpoint of this scenario, pre-training (and caching) it on first use.

    The shipped one comes first: the official results were measured from it, and a cached copy of the same key
    (from an older build of this package, or another machine's cache) must not stand in for it."""
    path = base_dir(scenario, shards, config, device, cache_dir)
    for weights in (SHIPPED_BASES / path.name / "model.safetensors", path / "model.safetensors"):
        if weights.exists():
            return load_file(weights)
    state = pretrain_base(scenario, shards, config, device, progress)
    with atomic_dir(path) as tmp:
        # Tied weights share storage; safetensors wants each tensor once.
        save_file({k: v.clone() for k, v in state.items()}, tmp / "model.safetensors")
        (tmp / "meta.json").write_text(json.dumps({"scenario": scenario.to_dict(), "device": device.type}, indent=1))
    return state
