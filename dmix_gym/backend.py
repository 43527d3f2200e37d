"""The model and trainer behind DataMixEnv's step: what a step trains and evaluates, in this process.

The env owns the MDP (mixture → sampled sequences → reward); a backend owns the model. Continual
pre-training at scale (`cpt.backend.ShardedBackend`) swaps this one for FSDP across ranks and keeps
the env's step logic as it is.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from transformers import LlamaConfig

from .base_checkpoint import load_or_pretrain_base
from .data.shards import ShardSet
from .errors import ConfigError
from .feedback import EvalSet, Evaluation, evaluate
from .model import build_model, load_pretrained_weights
from .scenario import Scenario
from .stacked import StackedLlama, StackedTrainer, default_slot_group
from .trainer import ProxyTrainer


def start_weights(scenario: Scenario, shards: ShardSet, model_config: LlamaConfig, device: torch.device,
                  cache_dir: str | Path | None, progress: bool) -> dict[str, torch.Tensor] | None:
    """The weights every episode starts from (the base checkpoint, or a user model's own weights), or None when each
    starts from random weights."""
    if scenario.train.init != "base":
        return None
    if scenario.hf_model is not None:
        return load_pretrained_weights(scenario.hf_model, device)
    return load_or_pretrain_base(scenario, shards, model_config, device, cache_dir, progress)


class ProxyBackend:
    """A proxy LM trained in this process, starting each episode from the base checkpoint (or random weights)."""

    def __init__(self, scenario: Scenario, model_config: LlamaConfig, shards: ShardSet, device: torch.device,
                 cache_dir: str | Path | None = None, compile: bool = False, progress: bool = True):
        self.scenario, self.model_config, self.device, self.compile = scenario, model_config, device, compile
        self.model = build_model(model_config, scenario.seed, device)
        self.start_state = start_weights(scenario, shards, model_config, device, cache_dir, progress)
        self.trainer: ProxyTrainer | None = None

    @property
    def fixed_start(self) -> bool:
        """Whether every episode starts from the same weights (so the start evaluation can be reused)."""
        return self.start_state is not None

    def reset(self, episode_seed: int, optimizer_steps: int) -> None:
        """Start weights and a fresh optimizer and LR schedule over `optimizer_steps` steps."""
        if self.start_state is not None:
            self.model.load_state_dict(self.start_state)
        else:
            self.model = build_model(self.model_config, episode_seed, self.device)
        train = self.scenario.train
        self.trainer = ProxyTrainer(self.model, train, optimizer_steps, train.lr, compile=self.compile)

    def train_on(self, tokens: torch.Tensor) -> dict[str, Any]:
        """Train on one step's (N, L) sequences; return mean loss, tokens and seconds."""
        return self.trainer.train_on(tokens)

    def evaluate(self, evalset: EvalSet) -> Evaluation:
        """Q/A log-prob per field, held-out loss per domain and probe scores of the current model."""
        return evaluate(self.model, evalset)


class StackedProxyBackend:
    """K proxies of one shape trained and evaluated as one `StackedLlama`; `slot(k)` is proxy k's backend.

    Each slot behaves as a `ProxyBackend` of its own (same start weights, schedule and optimizer
    state), so a `DataMixEnv` on a slot is a plain DataMix-v0 env; `DataMixVectorEnv` trains all
    slots in one batched call (`train_slots`) and evaluates them in one pass (`evaluate_slots`).
    """

    def __init__(self, scenario: Scenario, model_config: LlamaConfig, shards: ShardSet, device: torch.device,
                 cache_dir: str | Path | None = None, compile: bool = False, progress: bool = True, num_models: int = 1,
                 slot_group: int | None = None):
        if scenario.hf_model is not None:
            raise ConfigError(f"the vector env batches LLaMA proxies; {scenario.hf_model} runs one env per model")
        self.scenario, self.model_config, self.device, self.num_models = scenario, model_config, device, num_models
        logits = scenario.train.micro_batch * shards.seq_len * model_config.vocab_size
        self.slot_group = slot_group or default_slot_group(device, logits)  # proxies per training pass (StackedTrainer)
        self.model = StackedLlama(model_config, num_models).to(device)
        self.start_state = start_weights(scenario, shards, model_config, device, cache_dir, progress)
        self.trainer: StackedTrainer | None = None
        self._evaluations: list[Evaluation] | None = None
        self.slots = [SlotBackend(self, k) for k in range(num_models)]

    @property
    def fixed_start(self) -> bool:
        return self.start_state is not None

    def reset_slot(self, slot: int, episode_seed: int, optimizer_steps: int) -> None:
        """Proxy `slot` back to its start weights, with a fresh optimizer and schedule over `optimizer_steps` steps."""
        state = self.start_state if self.start_state is not None else \
            build_model(self.model_config, episode_seed, torch.device("cpu")).state_dict()
        self.model.load_slot(slot, state)
        if self.trainer is None or self.trainer.total_steps != optimizer_steps:
            train = self.scenario.train
            self.trainer = StackedTrainer(self.model, train, optimizer_steps, train.lr, self.slot_group)
        self.trainer.reset_slot(slot)
        self._evaluations = None

    def train_slots(self, tokens: torch.Tensor, active: torch.Tensor) -> dict[str, Any]:
        """Train proxy k on `tokens[k]` (K, N, L) where `active[k]`; per-proxy mean loss, tokens per proxy, seconds."""
        self._evaluations = None
        return self.trainer.train_on(tokens, active)

    def evaluate_slots(self, evalset: EvalSet) -> list[Evaluation]:
        """Every proxy's evaluation, in one batched pass (kept until the next training or reset)."""
        if self._evaluations is None:
            qa, loss, probes = evaluate(self.model, self._held_out_in_pieces(evalset))
            self._evaluations = [Evaluation(qa[k], loss[k], probes[k]) for k in range(self.num_models)]
        return self._evaluations


    def _held_out_in_pieces(self, evalset: EvalSet) -> EvalSet:
        """The eval set with its held-out batches cut so K proxies' full logits stay near `MAX_LOGITS` floats."""
        if not evalset.heldout:
            return evalset
        length = evalset.heldout[0][0].shape[1]
        rows = max(1, MAX_LOGITS // (self.num_models * length * self.model_config.vocab_size))
        pieces = [(ids[i : i + rows], dom[i : i + rows]) for ids, dom in evalset.heldout for i in range(0, len(ids), rows)]
        return dataclasses.replace(evalset, heldout=pieces)


MAX_LOGITS = 2**26  # 256 MB of fp32 logits per held-out batch: K = 64 cpu proxies would need 8.5 GB at the eval batch


class SlotBackend:
    """Proxy `slot` of a `StackedProxyBackend`, behind the `ProxyBackend` interface."""

    def __init__(self, stacked: StackedProxyBackend, slot: int):
        self.stacked, self.slot = stacked, slot
        self.model_config, self.start_state = stacked.model_config, stacked.start_state

    @property
    def fixed_start(self) -> bool:
        return self.stacked.fixed_start

    @property
    def model(self) -> torch.nn.Module:
        """A `LlamaForCausalLM` holding a copy of this proxy's current weights."""
        model = build_model(self.model_config, 0, self.stacked.device)
        model.load_state_dict(self.stacked.model.slot_state(self.slot))
        return model

    def reset(self, episode_seed: int, optimizer_steps: int) -> None:
        self.stacked.reset_slot(self.slot, episode_seed, optimizer_steps)

    def train_on(self, tokens: torch.Tensor) -> dict[str, Any]:
        """Train this proxy alone (the other slots are left as they are)."""
        stacked = tokens.new_zeros((self.stacked.num_models, *tokens.shape))
        stacked[self.slot] = tokens
        active = torch.zeros(self.stacked.num_models, dtype=torch.bool)
        active[self.slot] = True
        stats = self.stacked.train_slots(stacked, active)
        return {**stats, "loss": stats["loss"][self.slot]}

    def evaluate(self, evalset: EvalSet) -> Evaluation:
        return self.stacked.evaluate_slots(evalset)[self.slot]
