"""A training distribution of scenarios: a seeded generator whose draws vary what evaluation varies.

An agent trained on one scenario reads any change in dynamics as a change in what it should do (the generalisation
issue: another source corpus, another model size, a scarce corpus). RL gets generalisation from training
distributions (Procgen's levels, domain randomisation in sim-to-real); a `ScenarioSpace` is that distribution, as
data (`dmix_gym/scenario_spaces/*.json`). Each draw recomposes a base scenario's fields and settings:

- the source field: a subset of the labels (e.g. DBpedia-14's categories) of its labelled files, with or without
  each unlabelled file;
- the target field: a subset of its files (and of the labels of its labelled ones), fed back by one of several
  question/answer sets;
- the proxy's shape, from a ladder of sizes; the peak learning rate and its schedule;
- the target data fraction and what happens when it runs out; the horizon and tokens per step.

Source and target compositions come from pools drawn once per space (`source_pool`, `target_pool`), so draws share
data builds and base checkpoints. Every draw is a valid scenario (`Scenario.from_dict`), named `<space>-<index>`,
and the same (space, index) always gives the same draw. A draw never equals a held-out scenario's source field or
target field, nor a held-out model shape: the evaluation tasks' settings are named in the space and never drawn.
"""

from __future__ import annotations

import copy
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .data.sources import expand_files, iter_records
from .data.spec import find_scenario_file, read_json
from .errors import ConfigError
from .scenario import Scenario, make_scenario
from .utils.paths import resolve_data_dir

SPACES = Path(__file__).resolve().parent / "scenario_spaces"
SHAPE_KEYS = ("hidden_size", "num_layers", "num_heads", "intermediate_size")


@dataclass(frozen=True)
class ScenarioSpace:
    """What a draw may vary, and what it must never equal (see the module docstring)."""

    name: str
    base: str = "general-math"  # the scenario whose fields and preset the draws recompose
    preset: str = "cpu"
    seed: int = 0
    source_pool: int = 8  # source compositions drawn once per space
    target_pool: int = 6  # target compositions drawn once per space
    min_label_share: float = 0.3  # a labelled file keeps at least this share of its labels ...
    max_label_share: float = 0.85  # ... and at most this share (so never all of them)
    feedback_sets: tuple[str, ...] = ()  # Q/A files (relative to the data dir) a target field may be fed back by
    models: tuple[dict[str, int], ...] = ()  # the ladder of proxy shapes
    lr_range: tuple[float, float] = (1e-3, 4e-3)  # peak learning rate, log-uniform
    lr_schedules: tuple[str, ...] = ("cosine", "wsd")
    target_fractions: tuple[float, ...] = (1.0, 0.3, 0.1, 0.03)
    on_exhausted: tuple[str, ...] = ("terminate", "repeat")
    max_steps: tuple[int, ...] = (10, 15, 20, 30)
    tokens_per_step: tuple[int, ...] = (8_192, 16_384, 32_768)
    held_out_scenarios: tuple[str, ...] = ()  # scenarios whose source or target field a draw never equals
    held_out_models: tuple[dict[str, int], ...] = ()  # proxy shapes never drawn
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes carried into every draw's description

    def __post_init__(self) -> None:
        if not self.models or not self.feedback_sets:
            raise ConfigError(f"scenario space {self.name!r} needs a model ladder and at least one feedback set")
        if not 0 < self.min_label_share <= self.max_label_share < 1:
            raise ConfigError(f"scenario space {self.name!r}: need 0 < min_label_share <= max_label_share < 1")
        held = {shape_of(m) for m in self.held_out_models}
        clash = [m for m in self.models if shape_of(m) in held]
        if clash:
            raise ConfigError(f"scenario space {self.name!r}: its ladder holds held-out model shapes {clash}")
        low, high = self.lr_range
        if not 0 < low <= high:
            raise ConfigError(f"scenario space {self.name!r}: lr_range must be 0 < low <= high, got {self.lr_range}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ScenarioSpace":
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown scenario-space key(s) {sorted(unknown)}; known: {sorted(known)}")
        tuples = {k: tuple(v) for k, v in data.items() if isinstance(v, list)}
        return cls(**{**data, **tuples})


def shape_of(model: dict[str, Any]) -> tuple[int, ...]:
    return tuple(int(model[k]) for k in SHAPE_KEYS)


def load_space(name_or_path: str | Path) -> ScenarioSpace:
    """A scenario space by name (`dmix_gym/scenario_spaces/<name>.json`) or path."""
    path = Path(name_or_path)
    if not path.is_file():
        path = SPACES / f"{name_or_path}.json"
    if not path.is_file():
        shipped = sorted(p.stem for p in SPACES.glob("*.json"))
        raise ConfigError(f"no scenario space {str(name_or_path)!r}; shipped: {', '.join(shipped)}")
    return ScenarioSpace.from_dict(read_json(path))


def file_labels(files: tuple[str, ...], label_key: str | None, data_dir: Path) -> dict[str, list[str]]:
    """The label values present in each file of a source (empty: an unlabelled file), sorted."""
    labels = {}
    for pattern in files:
        for path in expand_files((pattern,), data_dir):
            found = {str(r[label_key]) for _, r in iter_records(path) if label_key and r.get(label_key) is not None}
            labels[str(path.relative_to(data_dir)) if path.is_relative_to(data_dir) else str(path)] = sorted(found)
    return labels


def _compose(rng: np.random.Generator, train: dict[str, Any], labels: dict[str, list[str]],
             space: ScenarioSpace) -> dict[str, Any]:
    """One composition of a field's corpus, as its training source spec: each file kept with probability 1/2 (at
    least two kept where the field has three or more, so a corpus is not one small file), and of a file with several
    labels a strict subset of them."""
    names = list(labels)
    files = [file for file in names if rng.random() < 0.5]
    least = 2 if len(names) >= 3 else 1
    if len(files) < least:
        files = sorted(rng.choice(names, size=least, replace=False).tolist())
    chosen: list[str] = []
    subset = False
    for file in files:
        values = labels[file]
        if len(values) > 1:
            k = int(rng.integers(max(1, round(space.min_label_share * len(values))),
                                 min(len(values) - 1, max(1, round(space.max_label_share * len(values)))) + 1))
            chosen += rng.choice(values, size=k, replace=False).tolist()
            subset = True
        else:
            chosen += values
    return {**train, "files": sorted(files), **({"labels": sorted(chosen)} if subset else {})}


def composition_key(train: dict[str, Any], data_dir: Path) -> tuple:
    """What a training source reads: its files (globs expanded) and its label filter (another kind: its origin)."""
    if train.get("kind", "files") != "files":
        return train["kind"], str(train.get("root") or train.get("hf_id"))
    files = tuple(sorted(str(p) for p in expand_files(tuple(train["files"]), data_dir)))
    return files, tuple(train["labels"]) if train.get("labels") else None


def _pool(rng: np.random.Generator, size: int, train: dict[str, Any], labels: dict[str, list[str]],
          space: ScenarioSpace, held: set[tuple], data_dir: Path) -> list[dict[str, Any]]:
    """`size` distinct compositions of a field, none reading what a held-out scenario's field reads."""
    pool: list[dict[str, Any]] = []
    for _ in range(100 * size):
        composition = _compose(rng, train, labels, space)
        key = composition_key(composition, data_dir)
        if key not in held and key not in {composition_key(c, data_dir) for c in pool}:
            pool.append(composition)
        if len(pool) == size:
            return pool
    raise ConfigError(f"scenario space {space.name!r}: found only {len(pool)} of {size} distinct compositions")


def held_out_fields(space: ScenarioSpace, data_dir: Path) -> tuple[set[tuple], set[tuple]]:
    """What the held-out scenarios' source and target fields read (`composition_key`)."""
    sources, targets = set(), set()
    for name in space.held_out_scenarios:
        for f in read_json(find_scenario_file(name))["fields"]:
            (sources if f["role"] == "source" else targets).add(composition_key(f["train"], data_dir))
    return sources, targets


def draw_scenarios(space: ScenarioSpace, count: int, data_dir: str | Path | None = None, start: int = 0) -> list[dict]:
    """Draws `start` .. `start + count - 1` of a space, each in the scenario-file form (`write_draws` saves them)."""
    root = resolve_data_dir(data_dir)
    base = read_json(find_scenario_file(space.base))
    source_field = next(f for f in base["fields"] if f["role"] == "source")
    target_field = next(f for f in base["fields"] if f["role"] == "target")
    held_sources, held_targets = held_out_fields(space, root)
    pools = np.random.default_rng([space.seed, 0])
    source_train = {k: v for k, v in source_field["train"].items() if k != "files"}
    target_train = {k: v for k, v in target_field["train"].items() if k != "files"}
    sources = _pool(pools, space.source_pool, source_train,
                    file_labels(tuple(source_field["train"]["files"]), source_train.get("label_key"), root), space,
                    held_sources, root)
    targets = _pool(pools, space.target_pool, target_train,
                    file_labels(tuple(target_field["train"]["files"]), target_train.get("label_key"), root), space,
                    held_targets, root)
    return [_draw(space, index, base, sources, targets) for index in range(start, start + count)]


def _draw(space: ScenarioSpace, index: int, base: dict, sources: list, targets: list) -> dict:
    """Draw `index` of a space, in the scenario-file form every `--scenario` takes (its preset given at use)."""
    rng = np.random.default_rng([space.seed, 1, index])
    data = {k: copy.deepcopy(v) for k, v in base.items() if k not in ("model", "train", "reward_weights", "hf_model")}
    data["name"] = f"{space.name}-{index:04d}"
    data["description"] = f"draw {index} of scenario space {space.name} (base {space.base}, for preset {space.preset})"
    source = sources[int(rng.integers(len(sources)))]
    target = targets[int(rng.integers(len(targets)))]
    feedback = space.feedback_sets[int(rng.integers(len(space.feedback_sets)))]
    for f in data["fields"]:
        if f["role"] == "source":
            f["train"] = source
        else:
            f["train"] = target
            f["eval"] = {**f.get("eval", {}), "files": [feedback]}
    low, high = np.log(space.lr_range)
    data["model"] = dict(space.models[int(rng.integers(len(space.models)))])
    data["train"] = {
        "lr": float(np.round(np.exp(rng.uniform(low, high)), 6)),
        "lr_schedule": str(rng.choice(space.lr_schedules)),
        "target_fraction": float(rng.choice(space.target_fractions)),
        "on_exhausted": str(rng.choice(space.on_exhausted)),
        "max_steps": int(rng.choice(space.max_steps)),
        "tokens_per_step": int(rng.choice(space.tokens_per_step)),
    }
    load_draw(data, space.preset)  # a draw that is not a valid scenario fails here
    return data


def load_draw(draw: dict[str, Any], preset: str) -> Scenario:
    """The Scenario a draw (scenario-file form) makes at a preset, through the loader every scenario file goes through."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{draw['name']}.json"
        path.write_text(json.dumps(draw))
        return make_scenario(str(path), preset)


def episode_flops(scenario: Scenario) -> float:
    """Training FLOPs of one full-horizon episode of a proxy scenario (FLOPs per token x tokens per step x steps): what
    a draw's episodes cost against another's, so a collection can run the cheap ones first."""
    from .model import llama_config, train_flops_per_token

    preset = scenario.data.preset
    config = llama_config(scenario.model, preset.vocab_size, preset.seq_len)
    return train_flops_per_token(config, preset.seq_len) * scenario.train.tokens_per_step * scenario.train.max_steps


def by_cost(draws: list[dict[str, Any]], space: ScenarioSpace) -> list[tuple[dict[str, Any], float]]:
    """(draw, its episode's cost relative to the space's base scenario's) for every draw, cheapest first."""
    base = episode_flops(make_scenario(space.base, space.preset))
    costs = [episode_flops(load_draw(draw, space.preset)) / base for draw in draws]
    return sorted(zip(draws, costs), key=lambda pair: pair[1])


def write_draws(draws: list[dict[str, Any]], out: str | Path) -> list[Path]:
    """Each draw as `<out>/<name>.json`, a scenario file any dmix command takes."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for draw in draws:
        path = folder / f"{draw['name']}.json"
        path.write_text(json.dumps(draw, indent=2) + "\n")
        paths.append(path)
    return paths
