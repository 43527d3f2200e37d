"""Build a scenario's data at a preset: read fields, decontaminate, tokenize, assign domains, write shards."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..utils.atomic import stable_hash
from ..utils.paths import resolve_cache_dir, resolve_data_dir
from .decontaminate import eval_fingerprint, is_contaminated
from .domains import DomainSpace, assign_domains
from .shards import FORMAT, MANIFEST, ShardSet, load_shard_set, token_dtype, write_eval_set, write_manifest, write_shard
from .sources import Document, EvalPair, read_documents, read_eval_pairs
from .spec import DataSpec
from .tokenizer import load_tokenizer, tokenizer_key, train_tokenizer


@dataclass(frozen=True)
class FieldData:
    """A field's documents after decontamination, and its chosen evaluation pairs."""

    documents: list[Document]
    eval_pairs: list[EvalPair]
    removed: int  # training documents dropped for overlapping an evaluation pair


def data_spec_hash(spec: DataSpec) -> str:
    """Identity of a built data folder: the scenario's fields, preset and seed."""
    return stable_hash(spec.to_dict())


def build_dir(spec: DataSpec, cache_dir: str | Path | None = None) -> Path:
    """Where the data of `spec` is (or will be) built."""
    return resolve_cache_dir(cache_dir) / "data" / f"{spec.name}-{spec.preset.name}-{data_spec_hash(spec)}"


def choose_eval_pairs(pairs: list[EvalPair], count: int, seed: int) -> list[EvalPair]:
    """A seeded sample of `count` evaluation pairs (all of them if fewer)."""
    order = np.random.default_rng(seed).permutation(len(pairs))
    return [pairs[i] for i in sorted(order[:count])]


def read_fields(spec: DataSpec, data_dir: Path, progress: bool = True) -> dict[str, FieldData]:
    """Read every field and drop training documents that overlap any field's evaluation pairs."""
    chosen = {}
    for f in spec.fields:
        pairs = read_eval_pairs(f.eval, data_dir)
        if not pairs:
            raise ValueError(f"field {f.name!r} has no evaluation pairs")
        chosen[f.name] = choose_eval_pairs(pairs, spec.preset.eval_pairs, spec.seed)
    fingerprint = eval_fingerprint((p.question, p.answer) for pairs in chosen.values() for p in pairs)
    result = {}
    for f in tqdm(spec.fields, desc="read fields", disable=not progress):
        docs = read_documents(f.train, data_dir, limit=spec.preset.max_docs_per_field)
        clean = [d for d in docs if not is_contaminated(d.text, fingerprint)]
        if not clean:
            raise ValueError(f"field {f.name!r} has no training documents left")
        result[f.name] = FieldData(clean, chosen[f.name], len(docs) - len(clean))
    return result


def tokenizer_sample(fields: dict[str, FieldData], chars_per_field: int) -> list[str]:
    """Up to `chars_per_field` characters of documents from each field, spread over its corpus."""
    sample = []
    for data in fields.values():
        budget = chars_per_field
        stride = max(1, sum(len(d.text) for d in data.documents) // chars_per_field)
        for doc in data.documents[:: min(stride, max(1, len(data.documents) // 50))]:
            sample.append(doc.text[:budget])
            budget -= len(sample[-1])
            if budget <= 0:
                break
    return sample


def _tokenize(tokenizer, texts: list[str], batch: int = 256) -> list[np.ndarray]:
    ids = []
    for start in range(0, len(texts), batch):
        encoded = tokenizer(texts[start : start + batch], add_special_tokens=False)["input_ids"]
        ids.extend(np.asarray(e, dtype=np.int64) for e in encoded)
    return ids


def build_data(
    spec: DataSpec,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
) -> ShardSet:
    """Build (or reuse, after verifying) the data folder of `spec`; return it loaded.

    An existing folder is verified, never silently rebuilt: a corrupt one raises ShardError
    unless `force` is set.
    """
    root = build_dir(spec, cache_dir)
    spec_hash = data_spec_hash(spec)
    if (root / MANIFEST).exists() and not force:
        return load_shard_set(root, expect_scenario=spec.name, expect_spec_hash=spec_hash)
    started = time.perf_counter()
    data_root = resolve_data_dir(data_dir)
    fields = read_fields(spec, data_root, progress)
    preset = spec.preset

    sample = tokenizer_sample(fields, preset.tokenizer_sample_chars)
    digest = hashlib.sha256("\x00".join(sample).encode()).hexdigest()
    tok_key = tokenizer_key(digest, preset.vocab_size)
    tok_dir = resolve_cache_dir(cache_dir) / "tokenizers" / tok_key
    tokenizer = load_tokenizer(tok_dir) if (tok_dir / "tokenizer.json").exists() else train_tokenizer(sample, preset.vocab_size, tok_dir)
    eos = tokenizer.eos_token_id
    dtype = token_dtype(len(tokenizer))

    rng = np.random.default_rng(spec.seed)
    names, field_of, doc_counts, domain_docs = [], [], [], []
    field_stats = {}
    for k, f in enumerate(tqdm(spec.fields, desc="domains", disable=not progress)):
        docs = fields[f.name].documents
        k_domains = 1 if f.domains == "source" else preset.domains_per_field
        ids, domain_names = assign_domains([d.text for d in docs], [d.label for d in docs], f.domains, k_domains, spec.seed)
        for d, name in enumerate(domain_names):
            members = np.flatnonzero(ids == d)
            if len(members) == 0:
                continue
            names.append(f"{f.name}/{name}")
            field_of.append(k)
            doc_counts.append(len(members))
            domain_docs.append([docs[i] for i in rng.permutation(members)])
        field_stats[f.name] = {"documents": len(docs), "decontaminated": fields[f.name].removed}

    root.mkdir(parents=True, exist_ok=True)
    (root / "shards").mkdir(exist_ok=True)
    (root / "eval").mkdir(exist_ok=True)
    (root / "tokenizer").mkdir(exist_ok=True)
    tokenizer.save_pretrained(root / "tokenizer")
    domains = []
    for d, docs in enumerate(tqdm(domain_docs, desc="tokenize shards", disable=not progress)):
        pieces = _tokenize(tokenizer, [doc.text for doc in docs])
        stream = np.concatenate([np.append(p, eos) for p in pieces]).astype(dtype)
        sequences = len(stream) // preset.seq_len
        heldout = min(preset.heldout_seqs_per_domain, max(1, sequences // 4))
        if sequences - heldout < 1:
            raise ValueError(f"domain {names[d]!r} has {len(stream)} tokens: too few for seq_len {preset.seq_len}")
        stream = stream[: sequences * preset.seq_len]
        shard = f"shards/{d:03d}.npy"
        domains.append({
            "name": names[d], "field": spec.fields[field_of[d]].name, "documents": doc_counts[d],
            "tokens": int(len(stream)), "train_sequences": sequences - heldout, "heldout_sequences": heldout,
            "shard": shard, "sha256": write_shard(root / shard, stream),
        })
    for f in spec.fields:
        eval_file = f"eval/{f.name}.jsonl"
        field_stats[f.name].update({
            "role": f.role,
            "tokens": sum(e["tokens"] for e in domains if e["field"] == f.name),
            "eval_pairs": len(fields[f.name].eval_pairs),
            "eval_file": eval_file,
            "eval_sha256": write_eval_set(root / eval_file, fields[f.name].eval_pairs),
        })

    space = domain_space(names, field_of, doc_counts, spec)
    write_manifest(root, {
        "format": FORMAT,
        "scenario": spec.name,
        "preset": preset.name,
        "data_spec_hash": spec_hash,
        "data_spec": spec.to_dict(),
        "data_dir": str(data_root),
        "seq_len": preset.seq_len,
        "token_dtype": dtype.name,
        "tokenizer": {"path": "tokenizer", "hash": tok_key, "vocab_size": len(tokenizer), "eos_id": eos,
                      "pad_id": tokenizer.pad_token_id},
        "domain_space": space.to_dict(),
        "domains": domains,
        "fields": field_stats,
        "build_seconds": round(time.perf_counter() - started, 2),
    })
    return load_shard_set(root, expect_scenario=spec.name, expect_spec_hash=spec_hash)


def domain_space(names: list[str], field_of: list[int], doc_counts: list[int], spec: DataSpec) -> DomainSpace:
    """Start state p0 (source documents per domain) and target distribution p* (target documents per domain)."""
    counts = np.asarray(doc_counts, dtype=np.float64)
    field_of_arr = np.asarray(field_of)
    source = field_of_arr == 0
    p0 = np.where(source, counts, 0.0)
    p0 /= p0.sum()
    # Each target field gets an equal share of p*, split by its own documents per domain.
    p_star = np.zeros_like(counts)
    targets = [k for k, f in enumerate(spec.fields) if f.role == "target"]
    for k in targets:
        mask = field_of_arr == k
        p_star[mask] = counts[mask] / counts[mask].sum() / len(targets)
    return DomainSpace(
        names=tuple(names), field_of=tuple(int(k) for k in field_of), fields=tuple(f.name for f in spec.fields),
        target_fields=tuple(spec.fields[k].name for k in targets),
        p0=tuple(float(x) for x in p0), p_star=tuple(float(x) for x in p_star),
    )
