"""FSDP behind DataMixEnv's step: the model sharded over ranks, each rank training on its share of the step's
sequences and evaluating its share of the eval batches; the env's sampling, feedback and reward are unchanged."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

from dmix_gym.backend import ProxyBackend
from dmix_gym.base_checkpoint import load_or_pretrain_base
from dmix_gym.data.shards import ShardSet
from dmix_gym.errors import ConfigError
from dmix_gym.feedback import EvalSet, Evaluation, domain_loss_sums, feedback_sums, ratio
from dmix_gym.model import build_model, load_pretrained_weights
from dmix_gym.scenario import Scenario
from dmix_gym.trainer import ProxyTrainer

from .distributed import Ranks, all_sum, wait_for_main
from .models import ModelChoice, build_on_meta, enable_checkpointing, resolve_model


def decoder_layers(net: torch.nn.Module) -> list[torch.nn.Module]:
    """The blocks FSDP shards one by one: the modules of the classes the model names as never to be split."""
    names = set(getattr(net, "_no_split_modules", None) or ())
    layers = [m for m in net.modules() if type(m).__name__ in names]
    if not layers:
        raise ConfigError(f"{type(net).__name__} names no decoder block class (_no_split_modules): FSDP cannot shard it")
    return layers


def restore_buffers(net: torch.nn.Module, config, device: torch.device) -> None:
    """Make again, on `device`, the buffers a meta-device model left empty that are not weights to load (rotary
    frequencies): LLaMA's rotary embedding; any other architecture's from a model built for real on the CPU."""
    if isinstance(config, LlamaConfig):
        with torch.device(device):
            net.model.rotary_emb = LlamaRotaryEmbedding(config)
        return
    missing = {f"{prefix}.{name}".lstrip(".") for prefix, module in net.named_modules()
               for name in module._non_persistent_buffers_set}
    if missing:
        reference = dict(build_model(config, 0, torch.device("cpu")).named_buffers())
        for prefix, module in net.named_modules():
            for name in module._non_persistent_buffers_set:
                module._buffers[name] = reference[f"{prefix}.{name}".lstrip(".")].to(device)


def _rank_share(items: list, ranks: Ranks) -> tuple[list, list]:
    """(this rank's items, padding items it runs and discards) so that every rank makes the same number of calls.

    FSDP gathers weights inside each forward, so ranks must run their forwards in lockstep.
    """
    mine = items[ranks.rank :: ranks.world]
    return mine, items[:1] * (math.ceil(len(items) / ranks.world) - len(mine))


class ShardedBackend(ProxyBackend):
    """The model, fully sharded (FSDP2) over the process group, bf16 compute on GPU, activation checkpointing."""

    def __init__(self, scenario: Scenario, model_config: LlamaConfig, shards: ShardSet, device: torch.device,
                 cache_dir: str | Path | None = None, compile: bool = False, progress: bool = True, *,
                 model: str, ranks: Ranks, checkpointing: bool = True):
        self.scenario, self.device, self.ranks = scenario, device, ranks
        c = model_config  # the scenario's proxy: its vocabulary and context are the data's
        choice = resolve_model(model, c.vocab_size, c.max_position_embeddings, c.pad_token_id, c.eos_token_id)
        self.model_config = choice.config or model_config
        self.start_state = self._start_state(choice, scenario, shards, model_config, cache_dir, progress)
        net = build_on_meta(self.model_config)
        if checkpointing:
            enable_checkpointing(net)
        mesh = init_device_mesh(device.type, (ranks.world,))
        precision = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if device.type == "cuda" \
            else MixedPrecisionPolicy()
        for layer in decoder_layers(net):
            fully_shard(layer, mesh=mesh, mp_policy=precision)
        fully_shard(net, mesh=mesh, mp_policy=precision)
        net.to_empty(device=device)
        restore_buffers(net, self.model_config, device)
        with torch.no_grad():  # FSDP initialises lazily from the first root forward; eval calls submodules directly
            net(input_ids=torch.zeros((1, 2), dtype=torch.long, device=device))
        net.reshard()
        self.model = net
        self.trainer: ProxyTrainer | None = None

    def _start_state(self, model: ModelChoice, scenario, shards, proxy_config, cache_dir, progress) -> dict[str, Any] | None:
        """The full start weights on rank 0 ({} elsewhere): the proxy's base checkpoint, a HF model's, or a seeded init."""
        if not self.ranks.main:
            wait_for_main(self.ranks)  # rank 0 may pre-train the proxy's base checkpoint first
            return {}
        if model.config is None:
            state = load_or_pretrain_base(scenario, shards, proxy_config, torch.device("cpu"), cache_dir, progress) \
                if scenario.train.init == "base" else build_model(proxy_config, scenario.seed, torch.device("cpu")).state_dict()
        elif model.weights is not None:
            state = load_pretrained_weights(model.weights, torch.device("cpu"))
        else:
            state = build_model(model.config, scenario.seed, torch.device("cpu")).state_dict()
        wait_for_main(self.ranks)
        return state

    @property
    def fixed_start(self) -> bool:
        return True  # one start state, whatever the episode seed

    def reset(self, episode_seed: int, optimizer_steps: int) -> None:
        options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True, strict=False)
        set_model_state_dict(self.model, self.start_state, options=options)
        train = self.scenario.train
        if train.micro_batch % self.ranks.world:
            raise ValueError(f"micro_batch {train.micro_batch} does not split over {self.ranks.world} ranks; "
                             f"choose a multiple of {self.ranks.world}")
        # Each rank takes 1/world of every micro-batch: the same optimizer steps, on the same batches, as the env.
        local = dataclasses.replace(train, micro_batch=train.micro_batch // self.ranks.world)
        self.trainer = ProxyTrainer(self.model, local, optimizer_steps, train.lr)

    def train_on(self, tokens: torch.Tensor) -> dict[str, Any]:
        """Train on this rank's share of the step's sequences; FSDP averages the gradients over ranks.

        Rank r takes sequences r, r + world, ...: its k-th micro-batch is its share of the env's k-th.
        """
        n, world = len(tokens), self.ranks.world
        if n % world:
            raise ValueError(f"a step draws {n} sequences, which {world} ranks cannot share evenly; "
                             f"choose tokens_per_step as a multiple of {world} x seq_len")
        stats = self.trainer.train_on(tokens[self.ranks.rank :: world])
        loss, tokens_seen = all_sum([np.array([stats["loss"]]), np.array([stats["tokens"]])], self.ranks)
        return {**stats, "loss": float(loss[0]) / world, "tokens": int(tokens_seen[0])}

    def evaluate(self, evalset: EvalSet) -> Evaluation:
        """Q/A per field, held-out loss per domain and probes, each rank evaluating a share of the batches."""
        self.model.eval()
        self.model.unshard()  # the root's weights (embeddings, final norm, LM head): eval calls its submodules directly
        sums = []
        for batches, groups, measure in ((evalset.answers, evalset.num_fields, feedback_sums),
                                         (evalset.heldout, evalset.num_domains, domain_loss_sums),
                                         (evalset.probes, evalset.num_probes, feedback_sums)):
            mine, padding = _rank_share(batches, self.ranks)
            sums += measure(self.model, mine, groups)
            measure(self.model, padding, groups)  # FSDP's forwards stay in lockstep across ranks
        self.model.reshard()
        qa_s, qa_n, loss_s, loss_n, probe_s, probe_n = all_sum(sums, self.ranks)
        return Evaluation(ratio(qa_s, qa_n), ratio(loss_s, loss_n), ratio(probe_s, probe_n))
