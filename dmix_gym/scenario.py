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

from .data.spec import DataSpec, find_scenario_file, load_data_spec, read_json
from .errors import ConfigError


def _require(config: object, name: str, ok: bool, want: str) -> None:
    """A ConfigError naming the config, the field and its bad value unless `ok`."""
    if not ok:
        raise ConfigError(f"{type(config).__name__}.{name} is {getattr(config, name)!r}: it must be {want}")


def _positive_ints(config: object, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(config, name)
        _require(config, name, isinstance(value, int) and not isinstance(value, bool) and value > 0, "a positive integer")


@dataclass(frozen=True)
class ProxyConfig:
    """Shape of the LLaMA-architecture proxy LM (vocabulary and context come from the data)."""

    hidden_size: int = 128  # model width d
    num_layers: int = 4  # decoder blocks
    num_heads: int = 4  # attention heads (head dim = hidden_size / num_heads)
    intermediate_size: int = 344  # SwiGLU width (~8/3 d)
    tie_embeddings: bool = False  # share input and output embeddings

    def __post_init__(self) -> None:
        _positive_ints(self, ("hidden_size", "num_layers", "num_heads", "intermediate_size"))
        _require(self, "hidden_size", self.hidden_size % self.num_heads == 0, f"a multiple of num_heads ({self.num_heads})")


LR_SCHEDULES = ("cosine", "wsd")
ON_EXHAUSTED = ("terminate", "repeat")


@dataclass(frozen=True)
class TrainConfig:
    """How the proxy is trained inside an episode and when pre-training its base checkpoint."""

    tokens_per_step: int = 16_384  # tokens trained per re-weighting step
    max_steps: int = 20  # re-weighting steps T (truncation)
    micro_batch: int = 32  # sequences per optimizer step
    lr: float = 2e-3  # peak learning rate in the episode
    min_lr_ratio: float = 0.1  # the schedule's floor, as a fraction of lr
    warmup_fraction: float = 0.05  # share of the episode's optimizer steps spent warming up
    lr_schedule: Literal["cosine", "wsd"] = "cosine"  # after warm-up: cosine decay, or warmup-stable-decay
    decay_fraction: float = 0.2  # wsd: share of the episode's optimizer steps in the final linear anneal
    target_fraction: float = 1.0  # share of each target domain's training sequences an episode may draw (< 1: scarce)
    on_exhausted: Literal["terminate", "repeat"] = "terminate"  # a used-up target field ends the episode, or is re-read
    weight_decay: float = 0.1  # AdamW decoupled weight decay
    grad_clip: float = 1.0  # global gradient-norm clip
    init: Literal["base", "scratch"] = "base"  # episode start: base checkpoint or random weights
    base_tokens: int = 1_200_000  # tokens of source-field pre-training for the base checkpoint
    base_lr: float = 3e-3  # peak learning rate of that pre-training
    eval_batch: int = 64  # sequences per evaluation forward pass

    def __post_init__(self) -> None:
        _positive_ints(self, ("tokens_per_step", "max_steps", "micro_batch", "base_tokens", "eval_batch"))
        for name in ("lr", "base_lr"):
            value = getattr(self, name)
            _require(self, name, isinstance(value, (int, float)) and math.isfinite(value) and value > 0, "a positive number")
        _require(self, "min_lr_ratio", 0.0 <= self.min_lr_ratio <= 1.0, "in [0, 1]")
        _require(self, "warmup_fraction", 0.0 <= self.warmup_fraction < 1.0, "in [0, 1)")
        _require(self, "decay_fraction", 0.0 < self.decay_fraction <= 1.0, "in (0, 1]")
        _require(self, "target_fraction", 0.0 < self.target_fraction <= 1.0, "in (0, 1]")
        _require(self, "grad_clip", self.grad_clip > 0, "positive")
        _require(self, "weight_decay", self.weight_decay >= 0, "non-negative")
        _require(self, "lr_schedule", self.lr_schedule in LR_SCHEDULES, f"one of {list(LR_SCHEDULES)}")
        _require(self, "on_exhausted", self.on_exhausted in ON_EXHAUSTED, f"one of {list(ON_EXHAUSTED)}")
        _require(self, "init", self.init in ("base", "scratch"), "'base' or 'scratch'")

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
    hf_model: str | None = None  # a Hugging Face causal-LM directory trained instead of the proxy (its tokenizer too)

    @property
    def name(self) -> str:
        return f"{self.data.name}-{self.data.preset.name}"

    @property
    def preset(self) -> str:
        return self.data.preset.name

    def __post_init__(self) -> None:
        if self.reward_weights is not None:
            weights = tuple(self.reward_weights)
            k = len(self.data.fields)
            if len(weights) != k:
                raise ConfigError(f"reward_weights has {len(weights)} entries for {k} fields")
            if not all(isinstance(w, (int, float)) and math.isfinite(w) and w >= 0 for w in weights) or not sum(weights) > 0:
                raise ConfigError(f"reward_weights {list(weights)} must be finite, non-negative and not all zero")

    def weights(self) -> tuple[float, ...]:
        """lambda_k of eq. 6, one per field (source first): the reward is their weighted sum of feedback changes."""
        k = len(self.data.fields)
        return tuple(float(w) for w in (self.reward_weights or tuple(1.0 / k for _ in range(k))))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "data": self.data.to_dict()}  # the data spec's own form (see DataSpec.to_dict)

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
            hf_model=data.get("hf_model"),
        )


def canonical_scenario(data: dict[str, Any]) -> dict[str, Any]:
    """A Scenario's JSON form with every field spelled out: two forms are the same scenario iff these are equal
    (a form saved before a config field existed reads it at its default)."""
    return json.loads(Scenario.from_dict(data).to_json())


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




def scenario_options(path: Path) -> dict[str, Any]:
    """The overrides a scenario file sets over its preset: its `model` and `train` objects, `reward_weights` and
    `hf_model` (a Hugging Face model directory to train instead of the proxy).

    A regime (a WSD schedule, a scarce target corpus, a longer horizon, other objective weights) is then data:
    `{"name": ..., "fields": [...], "train": {"lr_schedule": "wsd", "decay_fraction": 0.2}}`.
    """
    data = read_json(path)
    options: dict[str, Any] = {}
    for part, config in (("model", ProxyConfig), ("train", TrainConfig)):
        values = data.get(part) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: '{part}' must be an object of {config.__name__} fields, got {values!r}")
        unknown = sorted(set(values) - set(config.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"{path}: unknown {part} option(s) {unknown}; known: {sorted(config.__dataclass_fields__)}")
        options.update(values)
    if data.get("reward_weights") is not None:
        options["reward_weights"] = tuple(data["reward_weights"])
    if data.get("hf_model") is not None:
        options["hf_model"] = str(data["hf_model"])
    return options


def make_scenario(scenario: str = "general-math", preset: str = "cpu", **overrides: Any) -> Scenario:
    """The named scenario at a preset; the scenario file's own options (`scenario_options`) apply over the preset,
    and `overrides` replace TrainConfig/ProxyConfig/Scenario fields by name over both."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    model, train = PRESETS[preset]
    result = Scenario(data=load_data_spec(scenario, preset), model=model, train=train)
    options = {**scenario_options(find_scenario_file(scenario)), **overrides}
    return override(result, **options) if options else result


def parse_options(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Scenario options from KEY=VALUE strings (a CLI's --set): a value is JSON where it parses (numbers, booleans,
    lists), else the string itself."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"scenario option {item!r} is not KEY=VALUE")
        try:
            options[key] = json.loads(text)
        except json.JSONDecodeError:
            options[key] = text
    return options


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
    if "reward_weights" in parts["top"] and parts["top"]["reward_weights"] is not None:
        parts["top"]["reward_weights"] = tuple(parts["top"]["reward_weights"])
    try:
        return replace(
            scenario,
            model=replace(scenario.model, **parts["model"]),
            train=replace(scenario.train, **parts["train"]),
            **parts["top"],
        )
    except TypeError as error:  # a value of the wrong type compared or summed in a config's checks
        raise ConfigError(f"scenario override {overrides}: {error}") from None


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
