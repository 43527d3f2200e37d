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

from ..errors import ConfigError

SCENARIO_DIR_ENV = "DMIX_SCENARIO_PATH"
BUILTIN_SCENARIO_DIR = Path(__file__).resolve().parents[1] / "scenarios"


def _without_unset_labels(data: Any) -> Any:
    """`data` with every source's `labels: None` left out (see `DataSpec.to_dict`)."""
    if isinstance(data, dict):
        return {k: _without_unset_labels(v) for k, v in data.items() if not (k == "labels" and v is None)}
    if isinstance(data, (list, tuple)):
        return type(data)(_without_unset_labels(v) for v in data)
    return data


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
    labels: tuple[str, ...] | None = None  # keep only labelled records with one of these labels (None: all)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SourceSpec":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown source key(s) {sorted(unknown)}; known: {sorted(known)}")
        data = dict(data)
        if "files" in data:
            data["files"] = tuple([data["files"]] if isinstance(data["files"], str) else data["files"])
        if data.get("labels") is not None:
            if isinstance(data["labels"], str) or not data["labels"]:
                raise ConfigError(f"source labels must be a non-empty list of label values, got {data['labels']!r}")
            data["labels"] = tuple(str(label) for label in data["labels"])
        return cls(**data)


FEEDBACK_KINDS = ("qa", "heldout")


@dataclass(frozen=True)
class FeedbackTerm:
    """One part of a field's feedback f_k: its Q/A set (eq. 1) or its own held-out text, with a weight."""

    kind: Literal["qa", "heldout"]  # qa: mean log-prob per answer token; heldout: mean log-prob per held-out token
    weight: float = 1.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FeedbackTerm":
        if not isinstance(data, dict):
            raise ConfigError(f"a feedback term is an object like {{'kind': 'heldout', 'weight': 1.0}}, got {data!r}")
        unknown = set(data) - {"kind", "weight"}
        if unknown:
            raise ConfigError(f"unknown feedback key(s) {sorted(unknown)}; known: ['kind', 'weight']")
        if data.get("kind") not in FEEDBACK_KINDS:
            raise ConfigError(f"feedback kind {data.get('kind')!r} is not one of {list(FEEDBACK_KINDS)}")
        weight = data.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
            raise ConfigError(f"feedback weight {weight!r} of kind {data['kind']!r} must be a positive number")
        return cls(data["kind"], float(weight))


def default_feedback(role: str) -> tuple[FeedbackTerm, ...]:
    """A source field is fed back by its own held-out text (it falls whenever the model forgets the field);
    a target field by its Q/A set."""
    return (FeedbackTerm("heldout"),) if role == "source" else (FeedbackTerm("qa"),)


@dataclass(frozen=True)
class ProbeSpec:
    """A Q/A benchmark evaluated at every step and reported in `info["probes"]`, outside the observation and reward."""

    name: str
    source: SourceSpec

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ProbeSpec":
        data = dict(data)
        name = data.pop("name", None)
        if not isinstance(name, str) or not name or "/" in name:
            raise ConfigError(f"a probe needs a 'name' without '/', got {name!r}")
        return cls(name, SourceSpec.from_dict(data.pop("source", None) or data))


@dataclass(frozen=True)
class FieldSpec:
    """A body of text with a purpose: its training corpus, how it is fed back, and the benchmarks probed on it."""

    name: str
    role: Literal["source", "target"]
    train: SourceSpec
    eval: SourceSpec | None = None  # the field's Q/A set; a probe named "eval" when the feedback does not use it
    domains: Literal["cluster", "label", "source"] = "cluster"  # how the fine space splits it
    feedback: tuple[FeedbackTerm, ...] = ()  # () = default_feedback(role)
    probes: tuple[ProbeSpec, ...] = ()

    def __post_init__(self) -> None:
        if not self.feedback:
            object.__setattr__(self, "feedback", default_feedback(self.role))
        kinds = [t.kind for t in self.feedback]
        if len(set(kinds)) != len(kinds):
            raise ConfigError(f"field {self.name!r}: feedback lists kind(s) {kinds} more than once")
        if "qa" in kinds and self.eval is None:
            raise ConfigError(f"field {self.name!r}: feedback kind 'qa' needs an 'eval' Q/A set")
        names = [p.name for p in self.all_probes]
        if len(set(names)) != len(names):
            raise ConfigError(f"field {self.name!r}: duplicate probe names {names}")

    def feedback_weight(self, kind: str) -> float:
        """The weight of one kind of feedback in f_k (0 when the field does not use it)."""
        return sum(t.weight for t in self.feedback if t.kind == kind)

    @property
    def all_probes(self) -> tuple[ProbeSpec, ...]:
        """The probes, with the field's own Q/A set first when the feedback does not reward it."""
        own = (ProbeSpec("eval", self.eval),) if self.eval is not None and not self.feedback_weight("qa") else ()
        return own + self.probes

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FieldSpec":
        name = data.get("name")
        try:
            known = {f.name for f in fields(cls)}
            unknown = set(data) - known
            if unknown:
                raise ConfigError(f"unknown field key(s) {sorted(unknown)}; known: {sorted(known)}")
            if data.get("role") not in ("source", "target"):
                raise ConfigError(f"role must be 'source' or 'target', got {data.get('role')!r}")
            if data.get("domains", "cluster") not in ("cluster", "label", "source"):
                raise ConfigError(f"domains must be cluster|label|source, got {data['domains']!r}")
            feedback = data.get("feedback") or []
            if isinstance(feedback, (str, dict)):  # "heldout" or one term
                feedback = [feedback]
            return cls(
                name=name,
                role=data["role"],
                train=SourceSpec.from_dict(data["train"]),
                eval=SourceSpec.from_dict(data["eval"]) if data.get("eval") else None,
                domains=data.get("domains", "cluster"),
                feedback=tuple(FeedbackTerm.from_dict({"kind": t} if isinstance(t, str) else t) for t in feedback),
                probes=tuple(ProbeSpec.from_dict(p) for p in data.get("probes") or ()),
            )
        except (KeyError, TypeError, ValueError) as error:
            detail = f"missing key {error}" if isinstance(error, KeyError) else str(error)
            if str(detail).startswith(f"field {name!r}"):
                raise ConfigError(detail) from None
            raise ConfigError(f"field {name!r}: {detail}") from None


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
    probe_pairs: int = 32  # pairs per probe benchmark (reported, not rewarded: kept small)


DATA_PRESETS: dict[str, DataPreset] = {
    "smoke": DataPreset("smoke", vocab_size=512, domains_per_field=2, seq_len=64, eval_pairs=16,
                        max_question_tokens=32, max_answer_tokens=24, heldout_seqs_per_domain=2,
                        max_docs_per_field=1500, tokenizer_sample_chars=400_000, probe_pairs=8),
    "cpu": DataPreset("cpu", vocab_size=4096, domains_per_field=8, seq_len=128, eval_pairs=64,
                      max_question_tokens=64, max_answer_tokens=48, heldout_seqs_per_domain=4, probe_pairs=16),
    "paper": DataPreset("paper", vocab_size=8192, domains_per_field=26, seq_len=512, eval_pairs=500,
                        max_question_tokens=192, max_answer_tokens=192, heldout_seqs_per_domain=8, probe_pairs=128),
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
            raise ConfigError(f"scenario {self.name!r} needs exactly one source field and at least one target field, got roles {roles}")
        if self.fields[0].role != "source":
            raise ConfigError(f"scenario {self.name!r}: list the source field first")
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ConfigError(f"scenario {self.name!r} has duplicate field names {names}")

    @property
    def source_field(self) -> FieldSpec:
        return next(f for f in self.fields if f.role == "source")

    @property
    def target_fields(self) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.fields if f.role == "target")

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON data. A source's `labels` is left out where it is None (every source before it was added),
        so a spec that does not use it keeps the identity, and so the builds, it had before."""
        return _without_unset_labels(asdict(self))

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


def read_json(path: Path) -> dict[str, Any]:
    """A scenario file's JSON object; a malformed file is an error naming it, the line and the column."""
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: not valid JSON at line {error.lineno}, column {error.colno}: {error.msg}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a scenario file holds a JSON object, got {type(data).__name__}")
    return data


def find_scenario_file(scenario: str | os.PathLike) -> Path:
    """The JSON file of a scenario given by name (``general-math``, on the search path) or by path."""
    path = Path(scenario)
    if path.suffix == ".json" and path.exists():
        return path
    for folder in scenario_search_path():
        if (folder / f"{scenario}.json").exists():
            return folder / f"{scenario}.json"
    raise ConfigError(
        f"unknown scenario {str(scenario)!r}: no such file, and no {scenario}.json in "
        f"{[str(p) for p in scenario_search_path()]}; available: {available_scenarios()}"
    )


def load_data_spec(scenario: str | os.PathLike, preset: str | DataPreset = "cpu") -> DataSpec:
    """Read a scenario by name (``general-math``) or by path to its JSON file."""
    path = find_scenario_file(scenario)
    if isinstance(preset, str) and preset not in DATA_PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {sorted(DATA_PRESETS)}")
    data = read_json(path)
    data["preset"] = preset if isinstance(preset, str) else asdict(preset)
    try:
        return DataSpec.from_dict(data)
    except (KeyError, ValueError) as error:
        detail = f"missing key {error}" if isinstance(error, KeyError) else str(error)
        raise ConfigError(f"{path}: {detail}") from None
