"""A scenario: the data (fields, domains), the proxy model and the episode's training schedule.

A Scenario is a frozen dataclass that round-trips through JSON, so a Minari dataset can carry
it and `recover_environment()` can rebuild the same env. Presets give the scale:

| preset | proxy | D | steps | use |
| --- | --- | --- | --- | --- |
| smoke | ~0.1M params | 4 | 4 | tests: an episode in seconds on CPU |
| cpu | ~1.8M params | 16 | 20 | real trajectories on a 2-core CPU |
| paper | ~50M params | 52 | 80 | the paper's proxy, GPU |
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from .data.spec import DataSpec, load_data_spec, read_json
from .errors import ConfigError


@dataclass(frozen=True)
class ProxyConfig:
    """Shape of the LLaMA-architecture proxy LM (vocabulary and context come from the data)."""

    hidden_size: int = 128  # model width d
    num_layers: int = 4  # decoder blocks
    num_heads: int = 4  # attention heads (head dim = hidden_size / num_heads)
    intermediate_size: int = 344  # SwiGLU width (~8/3 d)
    tie_embeddings: bool = False  # share input and output embeddings


@dataclass(frozen=True)
class TrainConfig:
    """How the proxy is trained inside an episode and when pre-training its base checkpoint."""

    tokens_per_step: int = 16_384  # tokens trained per re-weighting step
    max_steps: int = 20  # re-weighting steps T (truncation)
    micro_batch: int = 32  # sequences per optimizer step
    lr: float = 2e-3  # peak learning rate in the episode
    min_lr_ratio: float = 0.1  # cosine floor, as a fraction of lr
    warmup_fraction: float = 0.05  # share of the episode's optimizer steps spent warming up
    weight_decay: float = 0.1  # AdamW decoupled weight decay
    grad_clip: float = 1.0  # global gradient-norm clip
    init: Literal["base", "scratch"] = "base"  # episode start: base checkpoint or random weights
    base_tokens: int = 1_200_000  # tokens of source-field pre-training for the base checkpoint
    base_lr: float = 3e-3  # peak learning rate of that pre-training
    eval_batch: int = 64  # sequences per evaluation forward pass

    def sequences_per_step(self, seq_len: int) -> int:
        """Training sequences drawn in one re-weighting step."""
        return max(1, self.tokens_per_step // seq_len)

    def optimizer_steps_per_step(self, seq_len: int) -> int:
        """Optimizer steps the proxy takes in one re-weighting step."""
        return math.ceil(self.sequences_per_step(seq_len) / self.micro_batch)


@dataclass(frozen=True)
class Scenario:
    """Everything that defines a DataMix-v0 task."""

    data: DataSpec
    model: ProxyConfig = field(default_factory=ProxyConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    reward_weights: tuple[float, ...] | None = None  # lambda_k per field; None = equal (eq. 6)
    seed: int = 0  # seeds the base checkpoint and scratch inits
    qa_separator: str = "\n"  # text between an eval question and its answer (part of the feedback's definition)

    @property
    def name(self) -> str:
        return f"{self.data.name}-{self.data.preset.name}"

    @property
    def preset(self) -> str:
        return self.data.preset.name

    def weights(self) -> tuple[float, ...]:
        k = len(self.data.fields)
        weights = self.reward_weights or tuple(1.0 / k for _ in range(k))
        if len(weights) != k:
            raise ConfigError(f"reward_weights has {len(weights)} entries for {k} fields")
        return tuple(float(w) for w in weights)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Scenario":
        weights = data.get("reward_weights")
        spec = dict(data["data"])
        # Scenarios saved before feedback kinds existed (dmix-bench-v0 datasets) fed every field by its Q/A set.
        spec["fields"] = [f if "feedback" in f else {**f, "feedback": [{"kind": "qa"}]} for f in spec["fields"]]
        return cls(
            data=DataSpec.from_dict(spec),
            model=ProxyConfig(**data.get("model", {})),
            train=TrainConfig(**data.get("train", {})),
            reward_weights=tuple(weights) if weights is not None else None,
            seed=data.get("seed", 0),
            qa_separator=data.get("qa_separator", "\n"),
        )


PRESETS: dict[str, tuple[ProxyConfig, TrainConfig]] = {
    "smoke": (
        ProxyConfig(hidden_size=48, num_layers=2, num_heads=2, intermediate_size=128),
        # A high episode lr makes forgetting observable within 4 steps at this size; at lower lr the
        # gain from learning the Q/A format on math text outweighs it for the source eval set.
        TrainConfig(tokens_per_step=4096, max_steps=4, micro_batch=16, lr=1e-2, base_tokens=131_072,
                    base_lr=5e-3, eval_batch=32),
    ),
    "cpu": (
        ProxyConfig(hidden_size=128, num_layers=4, num_heads=4, intermediate_size=344),
        TrainConfig(tokens_per_step=16_384, max_steps=20, micro_batch=16, lr=2e-3, base_tokens=1_200_000,
                    base_lr=3e-3, eval_batch=64),
    ),
    "paper": (
        ProxyConfig(hidden_size=576, num_layers=10, num_heads=9, intermediate_size=1536),
        TrainConfig(tokens_per_step=32_768, max_steps=80, micro_batch=32, lr=6e-4, base_tokens=8_000_000,
                    base_lr=1e-3, eval_batch=64),
    ),
}


def make_scenario(scenario: str = "general-math", preset: str = "cpu", **overrides: Any) -> Scenario:
    """The named scenario at a preset; `overrides` replace TrainConfig/ProxyConfig/Scenario fields by name."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    model, train = PRESETS[preset]
    result = Scenario(data=load_data_spec(scenario, preset), model=model, train=train)
    return override(result, **overrides) if overrides else result


def override(scenario: Scenario, **overrides: Any) -> Scenario:
    """Replace fields of the scenario or of its model/train configs, by field name."""
    parts = {"model": {}, "train": {}, "top": {}}
    for key, value in overrides.items():
        if key in ProxyConfig.__dataclass_fields__:
            parts["model"][key] = value
        elif key in TrainConfig.__dataclass_fields__:
            parts["train"][key] = value
        elif key in Scenario.__dataclass_fields__ and key not in ("data", "model", "train"):
            parts["top"][key] = value
        else:
            raise ConfigError(f"unknown scenario override {key!r}")
    return replace(
        scenario,
        model=replace(scenario.model, **parts["model"]),
        train=replace(scenario.train, **parts["train"]),
        **parts["top"],
    )


def resolve_scenario(scenario: "Scenario | dict | str | None", preset: str | None) -> Scenario:
    """Accept a Scenario, its dict/JSON form or file, or a scenario name or data-spec file (+ preset)."""
    if isinstance(scenario, Scenario):
        return scenario
    if isinstance(scenario, dict):
        return Scenario.from_dict(scenario)
    if isinstance(scenario, str) and scenario.lstrip().startswith("{"):
        return Scenario.from_dict(json.loads(scenario))
    if isinstance(scenario, str) and scenario.endswith(".json") and Path(scenario).is_file():
        saved = read_json(Path(scenario))
        if {"data", "model", "train"} <= saved.keys():  # a whole Scenario (Scenario.to_json), not a data spec
            try:
                return Scenario.from_dict(saved)
            except (KeyError, TypeError, ValueError) as error:
                raise ConfigError(f"{scenario}: not a saved scenario ({type(error).__name__}: {error})") from None
    return make_scenario(scenario or "general-math", preset or "cpu")
