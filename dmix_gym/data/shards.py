"""Token shards per domain (memory-mapped NumPy) and the manifest that vouches for them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DmixError
from ..utils.atomic import atomic_path, sha256_file, stable_hash, write_json
from .domains import DomainSpace
from .sources import EvalPair

MANIFEST = "manifest.json"
FORMAT = "dmix-shards-v1"


class ShardError(DmixError, RuntimeError):
    """A built data folder is missing, corrupt, or belongs to another scenario; the message names the file."""


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16 if vocab_size <= np.iinfo(np.uint16).max + 1 else np.uint32)


def write_shard(path: Path, tokens: np.ndarray) -> str:
    """Write one shard atomically; return its sha256."""
    with atomic_path(path, suffix=".npy") as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, tokens, allow_pickle=False)
    return sha256_file(path)


def write_eval_set(path: Path, pairs: list[EvalPair]) -> str:
    """Write a field's chosen evaluation pairs as JSONL atomically; return its sha256."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            for pair in pairs:
                handle.write(json.dumps({"question": pair.question, "answer": pair.answer, "origin": pair.origin}) + "\n")
    return sha256_file(path)


@dataclass
class ShardSet:
    """A verified, loaded data folder: the env's view of a scenario's data."""

    root: Path
    manifest: dict[str, Any]
    domain_space: DomainSpace
    shards: list[np.ndarray]  # memory-mapped token stream per domain
    eval_pairs: dict[str, list[tuple[str, str]]]  # field -> (question, answer), for fields whose feedback uses them
    probe_pairs: dict[str, list[tuple[str, str]]]  # "<field>/<probe>" -> (question, answer)

    @property
    def seq_len(self) -> int:
        return int(self.manifest["seq_len"])

    @property
    def build_id(self) -> str:
        """Identity of this build's content. Two builds of one spec on different machines can differ; their ids do too."""
        return stable_hash({"shards": [d["sha256"] for d in self.manifest["domains"]],
                            "eval": {f: s.get("eval_sha256") for f, s in self.manifest["fields"].items()}})

    @property
    def tokenizer_dir(self) -> Path:
        return self.root / self.manifest["tokenizer"]["path"]

    def train_sequences(self, domain: int) -> int:
        return int(self.manifest["domains"][domain]["train_sequences"])

    def heldout_sequences(self, domain: int) -> int:
        return int(self.manifest["domains"][domain]["heldout_sequences"])

    def sequence(self, domain: int, index: int) -> np.ndarray:
        """Sequence `index` of a domain (training sequences first, then held-out ones)."""
        start = index * self.seq_len
        return self.shards[domain][start : start + self.seq_len]


def load_shard_set(root: Path, expect_scenario: str | None = None, expect_spec_hash: str | None = None, verify: bool = True) -> ShardSet:
    """Load and verify a built data folder. Never rebuilds: a bad folder raises ShardError naming the file."""
    manifest_path = root / MANIFEST
    if not manifest_path.exists():
        raise ShardError(f"{manifest_path}: no manifest; build the data first with `dmix data build`")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as err:
        raise ShardError(f"{manifest_path}: corrupt manifest ({err})") from None
    if manifest.get("format") != FORMAT:
        raise ShardError(f"{manifest_path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    if expect_scenario is not None and manifest["scenario"] != expect_scenario:
        raise ShardError(f"{manifest_path}: built for scenario {manifest['scenario']!r}, not {expect_scenario!r}")
    if expect_spec_hash is not None and manifest["data_spec_hash"] != expect_spec_hash:
        raise ShardError(f"{manifest_path}: built from data spec {manifest['data_spec_hash']}, not {expect_spec_hash}")
    dtype = np.dtype(manifest["token_dtype"])
    shards = []
    for entry in manifest["domains"]:
        path = root / entry["shard"]
        if not path.exists():
            raise ShardError(f"{path}: shard of domain {entry['name']!r} is missing")
        if verify and sha256_file(path) != entry["sha256"]:
            raise ShardError(f"{path}: shard of domain {entry['name']!r} is corrupt (sha256 mismatch)")
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as err:
            raise ShardError(f"{path}: unreadable shard ({err})") from None
        if array.dtype != dtype or array.shape != (entry["tokens"],):
            raise ShardError(f"{path}: shape {array.shape} dtype {array.dtype}, manifest says ({entry['tokens']},) {dtype}")
        shards.append(array)
    eval_pairs, probe_pairs = {}, {}
    for name, info in manifest["fields"].items():
        if "eval_file" in info:
            eval_pairs[name] = _read_pairs(root / info["eval_file"], info["eval_sha256"], f"evaluation set of field {name!r}", verify)
        for probe, entry in info.get("probes", {}).items():
            probe_pairs[f"{name}/{probe}"] = _read_pairs(root / entry["file"], entry["sha256"],
                                                         f"probe {probe!r} of field {name!r}", verify)
    return ShardSet(root, manifest, DomainSpace.from_dict(manifest["domain_space"]), shards, eval_pairs, probe_pairs)


def _read_pairs(path: Path, sha256: str, what: str, verify: bool) -> list[tuple[str, str]]:
    if not path.exists():
        raise ShardError(f"{path}: {what} is missing")
    if verify and sha256_file(path) != sha256:
        raise ShardError(f"{path}: {what} is corrupt (sha256 mismatch)")
    with open(path, encoding="utf-8") as handle:
        return [(r["question"], r["answer"]) for r in map(json.loads, handle)]


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    write_json(root / MANIFEST, manifest)
