"""The model and trainer behind DataMixEnv's step: what a step trains and evaluates, in this process.

The env owns the MDP (mixture → sampled sequences → reward); a backend owns the model. Continual
pre-training at scale (`cpt.backend.ShardedBackend`) swaps this one for FSDP across ranks and keeps
the env's step logic as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import LlamaConfig

from .base import load_or_pretrain_base
from .data.shards import ShardSet
from .feedback import EvalSet, Evaluation, evaluate
from .model import build_model
from .scenario import Scenario
from .trainer import ProxyTrainer


class ProxyBackend:
    """A proxy LM trained in this process, starting each episode from the base checkpoint (or random weights)."""

    def __init__(self, scenario: Scenario, model_config: LlamaConfig, shards: ShardSet, device: torch.device,
                 cache_dir: str | Path | None = None, compile: bool = False, progress: bool = True):
        self.scenario, self.model_config, self.device, self.compile = scenario, model_config, device, compile
        self.model = build_model(model_config, scenario.seed, device)
        self.start_state = (load_or_pretrain_base(scenario, shards, model_config, device, cache_dir, progress)
                            if scenario.train.init == "base" else None)
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
