"""The start state p_0 without the source data (paper, App. B): sample text from the model itself,
assign each sample to a source domain, and average.

A user continuing the pre-training of a released model rarely has its pre-training corpus. What the
model generates reflects what it was trained on, so the share of its samples that fall in each source
domain estimates p_0, the closer the more samples are drawn.

Samples are drawn from the base checkpoint (ancestral sampling at temperature 1 from the end-of-text
token). Each is assigned to the source domain under which it is most likely, by a multinomial naive
Bayes over the scenario's tokens fitted on each source domain's training shard. (The paper classifies
samples with a trained domain classifier; naive Bayes over the shards works for every domain method,
clusters and labels alike, and needs nothing beyond the built data.) The estimate is written beside
the built data, keyed by the sample count and seed, so `gym.make("DataMix-v0", start="estimated")`
reuses it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data.shards import ShardSet
from .errors import ConfigError
from .utils.atomic import write_json
from .utils.paths import resolve_cache_dir


def domain_log_probs(shards: ShardSet, vocab_size: int, smoothing: float = 1.0) -> np.ndarray:
    """(S, V) log p(token | source domain) from each source domain's training tokens (Laplace-smoothed)."""
    space = shards.domain_space
    rows = []
    for d in (d for d in range(space.size) if space.field_of[d] == 0):
        tokens = np.asarray(shards.shards[d][: shards.train_sequences(d) * shards.seq_len], dtype=np.int64)
        counts = np.bincount(tokens, minlength=vocab_size)[:vocab_size].astype(np.float64) + smoothing
        rows.append(np.log(counts / counts.sum()))
    return np.stack(rows)


def classify(samples: list[np.ndarray], log_probs: np.ndarray) -> np.ndarray:
    """The most likely source domain of each sample (token-id array) under the naive Bayes model."""
    return np.array([int(np.argmax(log_probs[:, s].sum(1))) if len(s) else 0 for s in samples], dtype=np.int64)


@torch.no_grad()
def sample_texts(model, count: int, length: int, start_token: int, seed: int, batch: int = 64) -> list[np.ndarray]:
    """`count` token sequences of `length` new tokens sampled from `model` (temperature 1, no truncation)."""
    if count <= 0:
        raise ConfigError(f"the number of samples must be positive, got {count}")
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    was_training, samples = model.training, []
    model.eval()
    for first in range(0, count, batch):
        n = min(batch, count - first)
        ids = torch.full((n, 1), start_token, dtype=torch.long, device=device)
        past = None
        for _ in range(length):
            result = model(input_ids=ids if past is None else ids[:, -1:], past_key_values=past, use_cache=True)
            past = result.past_key_values
            probs = torch.softmax(result.logits[:, -1].float(), dim=-1)
            ids = torch.cat([ids, torch.multinomial(probs, 1, generator=generator)], dim=1)
        samples.extend(ids[:, 1:].cpu().numpy())
    model.train(was_training)
    return samples


def kl_divergence(p: np.ndarray, q: np.ndarray, floor: float = 1e-6) -> float:
    """KL(p || q) in nats, q floored so an empty estimate bin stays finite."""
    p, q = np.asarray(p, np.float64), np.maximum(np.asarray(q, np.float64), floor)
    mask = p > 0
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def estimate_path(shards: ShardSet, samples: int, seed: int, cache_dir: str | Path | None = None) -> Path:
    """Where the estimate for (samples, seed) is kept: in the cache, since a shipped build's folder is read-only."""
    return resolve_cache_dir(cache_dir) / "start-estimates" / shards.root.name / f"n{samples}-seed{seed}.json"


def estimate_start(model, shards: ShardSet, samples: int = 256, seed: int = 0, length: int | None = None,
                   vocab_size: int | None = None, cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Estimate p_0 from `samples` texts sampled from `model`; write it to `estimate_path` and return it.

    The result holds the estimated p_0 over all domains (zero on target domains), the true one, their KL,
    the sample count, the seed and the seconds spent.
    """
    tokenizer = shards.manifest["tokenizer"]
    vocab = vocab_size or int(tokenizer["vocab_size"])
    model_vocab = int(model.config.vocab_size)
    if model_vocab < vocab:
        raise ConfigError(f"the model has a vocabulary of {model_vocab} tokens, the scenario's tokenizer {vocab}: "
                          "sample from a model trained with the scenario's tokenizer")
    started = time.perf_counter()
    texts = sample_texts(model, samples, length or shards.seq_len, int(tokenizer["eos_id"]), seed)
    domains = classify([np.minimum(t, vocab - 1) for t in texts], domain_log_probs(shards, vocab))
    space = shards.domain_space
    source = [d for d in range(space.size) if space.field_of[d] == 0]
    estimate = np.zeros(space.size)
    estimate[source] = np.bincount(domains, minlength=len(source)) / len(domains)
    result = {"p0": estimate.tolist(), "true_p0": list(space.p0), "kl": kl_divergence(space.p0, estimate),
              "samples": samples, "seed": seed, "seconds": round(time.perf_counter() - started, 2)}
    write_json(estimate_path(shards, samples, seed, cache_dir), result)
    return result


def load_or_estimate_start(model, shards: ShardSet, samples: int, seed: int,
                           cache_dir: str | Path | None = None) -> dict[str, Any]:
    """The estimate written for (samples, seed), or a new one."""
    path = estimate_path(shards, samples, seed, cache_dir)
    return json.loads(path.read_text()) if path.exists() else estimate_start(model, shards, samples, seed, cache_dir=cache_dir)
