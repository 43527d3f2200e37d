"""What data a scenario needs: fields, their corpora and evaluation sets, and the data presets.

A scenario file (``scenarios/<name>.json``) is plain data, so a user adds a field without
touching code::

    {"name": "general-math",
     "fields": [
       {"name": "general", "role": "source", "domains": "cluster",
        "train": {"kind": "files", "files": ["general/*.jsonl.gz"]},
        "eval":  {"kind": "files", "files": ["eval/mmlu_stem_nonmath.jsonl.gz"]}},
       ...]}

Source kinds: ``files`` (JSONL, JSONL.gz, Parquet or plain text, globs relative to the data
directory), ``hf`` (a Hugging Face dataset id, read through ``datasets``), ``python`` (a
Python source tree; its evaluation pairs are built with ``ast`` from held-out files).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

SCENARIO_DIR_ENV = "DMIX_SCENARIO_PATH"
BUILTIN_SCENARIO_DIR = Path(__file__).resolve().parents[1] / "scenarios"


@dataclass(frozen=True)
class SourceSpec:
    """Where a field's records come from."""

    kind: Literal["files", "hf", "python"] = "files"
    files: tuple[str, ...] = ()  # globs, relative to the data directory unless absolute
    text_key: str = "text"  # record key of a training document
    label_key: str | None = "domain"  # record key of a domain label, if records carry one
    question_key: str = "question"  # record key of an evaluation question
    answer_key: str = "answer"  # record key of an evaluation answer
    hf_id: str | None = None  # Hugging Face dataset id (kind="hf")
    hf_config: str | None = None  # its configuration name
    hf_split: str = "train"  # its split
    root: str | None = None  # Python source tree (kind="python"); None = this interpreter's stdlib

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SourceSpec":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown source key(s) {sorted(unknown)}; known: {sorted(known)}")
        data = dict(data)
        if "files" in data:
            data["files"] = tuple([data["files"]] if isinstance(data["files"], str) else data["files"])
        return cls(**data)


@dataclass(frozen=True)
class FieldSpec:
    """A body of text with a purpose: its training corpus and its evaluation set."""

    name: str
    role: Literal["source", "target"]
    train: SourceSpec
    eval: SourceSpec
    domains: Literal["cluster", "label", "source"] = "cluster"  # how the fine space splits it

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FieldSpec":
        if data.get("role") not in ("source", "target"):
            raise ValueError(f"field {data.get('name')!r}: role must be 'source' or 'target', got {data.get('role')!r}")
        if data.get("domains", "cluster") not in ("cluster", "label", "source"):
            raise ValueError(f"field {data.get('name')!r}: domains must be cluster|label|source, got {data['domains']!r}")
        return cls(
            name=data["name"],
            role=data["role"],
            train=SourceSpec.from_dict(data["train"]),
            eval=SourceSpec.from_dict(data["eval"]),
            domains=data.get("domains", "cluster"),
        )


@dataclass(frozen=True)
class DataPreset:
    """The data-side numbers of a scale preset."""

    name: str
    vocab_size: int  # byte-level BPE vocabulary
    domains_per_field: int  # 1 = the source-based space; >1 = a fine space
    seq_len: int  # tokens per training sequence
    eval_pairs: int  # evaluation pairs per field
    max_question_tokens: int  # questions are cut from the left to this many tokens
    max_answer_tokens: int  # answers are cut from the right to this many tokens
    heldout_seqs_per_domain: int  # sequences per domain kept out of training for the domain loss
    max_docs_per_field: int | None = None  # cap on documents read per field (None: all)
    tokenizer_sample_chars: int = 4_000_000  # characters per field the tokenizer is trained on


DATA_PRESETS: dict[str, DataPreset] = {
    "smoke": DataPreset("smoke", vocab_size=512, domains_per_field=2, seq_len=64, eval_pairs=16,
                        max_question_tokens=32, max_answer_tokens=24, heldout_seqs_per_domain=2,
                        max_docs_per_field=1500, tokenizer_sample_chars=400_000),
    "cpu": DataPreset("cpu", vocab_size=4096, domains_per_field=8, seq_len=128, eval_pairs=128,
                      max_question_tokens=64, max_answer_tokens=48, heldout_seqs_per_domain=4),
    "paper": DataPreset("paper", vocab_size=8192, domains_per_field=26, seq_len=512, eval_pairs=500,
                        max_question_tokens=192, max_answer_tokens=192, heldout_seqs_per_domain=8),
}


@dataclass(frozen=True)
class DataSpec:
    """A scenario's fields plus the data preset they are built at."""

    name: str
    fields: tuple[FieldSpec, ...]
    preset: DataPreset
    seed: int = 0
    description: str = ""

    def __post_init__(self) -> None:
        roles = [f.role for f in self.fields]
        if roles.count("source") != 1 or "target" not in roles:
            raise ValueError(f"scenario {self.name!r} needs exactly one source field and at least one target field, got roles {roles}")
        if self.fields[0].role != "source":
            raise ValueError(f"scenario {self.name!r}: list the source field first")
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"scenario {self.name!r} has duplicate field names {names}")

    @property
    def source_field(self) -> FieldSpec:
        return next(f for f in self.fields if f.role == "source")

    @property
    def target_fields(self) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.fields if f.role == "target")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DataSpec":
        preset = data["preset"]
        preset = DataPreset(**preset) if isinstance(preset, dict) else DATA_PRESETS[preset]
        return cls(
            name=data["name"],
            # The source field comes first: domain spaces index it as field 0.
            fields=tuple(sorted((FieldSpec.from_dict(f) for f in data["fields"]), key=lambda f: f.role != "source")),
            preset=preset,
            seed=data.get("seed", 0),
            description=data.get("description", ""),
        )

    def with_preset(self, preset: str | DataPreset) -> "DataSpec":
        return replace(self, preset=DATA_PRESETS[preset] if isinstance(preset, str) else preset)


def scenario_search_path() -> list[Path]:
    """Folders searched for ``<name>.json``: $DMIX_SCENARIO_PATH entries, then the built-in folder."""
    extra = [Path(p) for p in os.environ.get(SCENARIO_DIR_ENV, "").split(os.pathsep) if p]
    return extra + [BUILTIN_SCENARIO_DIR]


def available_scenarios() -> list[str]:
    """Names of the scenario files on the search path."""
    names: set[str] = set()
    for folder in scenario_search_path():
        names.update(p.stem for p in folder.glob("*.json"))
    return sorted(names)


def load_data_spec(scenario: str | os.PathLike, preset: str | DataPreset = "cpu") -> DataSpec:
    """Read a scenario by name (``general-math``) or by path to its JSON file."""
    path = Path(scenario)
    if path.suffix != ".json" or not path.exists():
        for folder in scenario_search_path():
            if (folder / f"{scenario}.json").exists():
                path = folder / f"{scenario}.json"
                break
        else:
            raise FileNotFoundError(
                f"unknown scenario {str(scenario)!r}: no such file, and no {scenario}.json in "
                f"{[str(p) for p in scenario_search_path()]}; available: {available_scenarios()}"
            )
    if isinstance(preset, str) and preset not in DATA_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(DATA_PRESETS)}")
    data = json.loads(path.read_text())
    data["preset"] = preset if isinstance(preset, str) else asdict(preset)
    return DataSpec.from_dict(data)
