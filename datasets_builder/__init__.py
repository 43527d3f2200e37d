"""Fields and corpora, tokenizer, domains and token shards (and, downstream of the env, trajectories)."""

from .build import build_data, build_dir, data_spec_hash
from .domains import DomainSpace, collapse, expand
from .paths import resolve_cache_dir, resolve_data_dir
from .shards import ShardError, ShardSet, load_shard_set
from .sources import DataFileError, Document, EvalPair
from .spec import DATA_PRESETS, DataPreset, DataSpec, FieldSpec, SourceSpec, available_scenarios, load_data_spec

__all__ = [
    "DATA_PRESETS", "DataFileError", "DataPreset", "DataSpec", "Document", "DomainSpace", "EvalPair",
    "FieldSpec", "ShardError", "ShardSet", "SourceSpec", "available_scenarios", "build_data", "build_dir",
    "collapse", "data_spec_hash", "expand", "load_data_spec", "load_shard_set", "resolve_cache_dir",
    "resolve_data_dir",
]
