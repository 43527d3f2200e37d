"""The env's world: fields and corpora, tokenizer, domains, token shards, start/target distributions, evaluation sets."""

from .build import build_data, build_dir, data_spec_hash, find_build
from .domains import DomainSpace, collapse, expand
from .shards import ShardError, ShardSet, load_shard_set
from .sources import DataFileError, Document, EvalPair
from .spec import DATA_PRESETS, DataPreset, DataSpec, FieldSpec, SourceSpec, available_scenarios, load_data_spec

__all__ = [
    "DATA_PRESETS", "DataFileError", "DataPreset", "DataSpec", "Document", "DomainSpace", "EvalPair",
    "FieldSpec", "ShardError", "ShardSet", "SourceSpec", "available_scenarios", "build_data", "build_dir",
    "collapse", "data_spec_hash", "expand", "find_build", "load_data_spec", "load_shard_set",
]
