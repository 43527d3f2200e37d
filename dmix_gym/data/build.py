"""Build a scenario's data at a preset: read fields, decontaminate, tokenize, assign domains, write shards.

The built-in scenarios' builds at the `cpu` preset (the default protocol's tasks' data) ship in the package
(`dmix_gym/data/built/`), so every machine evaluates on the very data the official results were measured on:
a rebuild can differ across CPUs and library versions in ways no seed controls. `benchmarks/ship_tasks.py`
writes them.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..utils.atomic import stable_hash
from ..utils.paths import builtin_data_dir, resolve_cache_dir, resolve_data_dir
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
    eval_pairs: list[EvalPair]  # the Q/A set its feedback rewards (empty when it does not use one)
    probes: dict[str, list[EvalPair]]  # probe name -> its chosen pairs
    removed: int  # training documents dropped for overlapping an evaluation or probe pair


# Bumped when a build of the same spec would differ: 2 holds out whole documents in every domain that has two or more.
BUILD_RULES = 2


def data_spec_hash(spec: DataSpec) -> str:
    """Identity of a built data folder: the scenario's fields, preset and seed, and the build's rules."""
    return stable_hash({**spec.to_dict(), "build_rules": BUILD_RULES})


SHIPPED_BUILDS = Path(__file__).resolve().parent / "built"


def build_dir(spec: DataSpec, cache_dir: str | Path | None = None, tokenizer_id: str | None = None) -> Path:
    """Where the data of `spec` is (or will be) built in the cache (tokenized with a user model's tokenizer, if given)."""
    tail = f"-tok-{tokenizer_id}" if tokenizer_id else ""
    return resolve_cache_dir(cache_dir) / "data" / f"{spec.name}-{spec.preset.name}-{data_spec_hash(spec)}{tail}"


def _raw_data_id(root: Path) -> str | None:
    manifest = root / "MANIFEST.sha256"
    return manifest.read_text() if manifest.exists() else None


def shipped_build(spec: DataSpec, data_dir: str | Path | None = None) -> Path | None:
    """The package's build of `spec`, if it ships one and `data_dir` holds the built-in raw data it was built from."""
    path = SHIPPED_BUILDS / build_dir(spec).name
    if not (path / MANIFEST).exists():
        return None
    root, builtin = resolve_data_dir(data_dir), builtin_data_dir()
    builtin_id = _raw_data_id(builtin)
    same_raw_data = root == builtin or (builtin_id is not None and _raw_data_id(root) == builtin_id)
    return path if same_raw_data else None


def find_build(spec: DataSpec, data_dir: str | Path | None = None, cache_dir: str | Path | None = None) -> Path:
    """Where the data of `spec` is read from: the shipped build when there is one, else the cache."""
    return shipped_build(spec, data_dir) or build_dir(spec, cache_dir)


def choose_eval_pairs(pairs: list[EvalPair], count: int, seed: int) -> list[EvalPair]:
    """A seeded sample of `count` evaluation pairs (all of them if fewer)."""
    order = np.random.default_rng(seed).permutation(len(pairs))
    return [pairs[i] for i in sorted(order[:count])]


def read_fields(spec: DataSpec, data_dir: Path, progress: bool = True) -> dict[str, FieldData]:
    """Read every field and drop training documents that overlap any pair of any field's evaluation or probe sets.

    Every pair of those sets counts, not only the ones a preset samples, so the training data (and the base
    checkpoint trained on it) does not depend on how many pairs a preset evaluates.
    """
    chosen, probes, everything = {}, {}, []
    for f in spec.fields:
        rewarded = f.eval is not None and f.feedback_weight("qa") > 0
        sets = [(None, f.eval, spec.preset.eval_pairs)] if rewarded else []  # None: the rewarded Q/A set
        sets += [(p.name, p.source, spec.preset.probe_pairs) for p in f.all_probes]
        chosen[f.name], probes[f.name] = [], {}
        for probe, source, count in sets:
            pairs = read_eval_pairs(source, data_dir)
            if not pairs:
                raise ValueError(f"field {f.name!r}" + (f", probe {probe!r}," if probe else "") + " has no evaluation pairs")
            everything += pairs
            if probe is None:
                chosen[f.name] = choose_eval_pairs(pairs, count, spec.seed)
            else:
                probes[f.name][probe] = choose_eval_pairs(pairs, count, spec.seed)
    fingerprint = eval_fingerprint((p.question, p.answer) for p in everything)
    result = {}
    for f in tqdm(spec.fields, desc="read fields", disable=not progress):
        docs = read_documents(f.train, data_dir, limit=spec.preset.max_docs_per_field)
        clean = [d for d in docs if not is_contaminated(d.text, fingerprint)]
        if not clean:
            raise ValueError(f"field {f.name!r} has no training documents left")
        result[f.name] = FieldData(clean, chosen[f.name], probes[f.name], len(docs) - len(clean))
    return result


def drop_overlapping_heldout(domains: list[int], domain_docs: list[list[Document]], pieces: list[list[np.ndarray]],
                             held_counts: list[int]) -> int:
    """Drop (in place) the training documents of these domains that share a 13-word window with their held-out ones.

    The held-out documents are the last `held_counts[d]` of each domain; return how many training documents went.
    """
    fingerprint = eval_fingerprint((doc.text, "") for d in domains if held_counts[d] for doc in domain_docs[d][-held_counts[d]:])
    if not fingerprint:
        return 0
    dropped = 0
    for d in domains:
        cut = len(domain_docs[d]) - held_counts[d]
        keep = [i for i in range(cut) if not is_contaminated(domain_docs[d][i].text, fingerprint)]
        dropped += cut - len(keep)
        pieces[d] = [pieces[d][i] for i in keep] + pieces[d][cut:]
        if not keep:  # nothing left to train on: the held-out documents become the stream, split at its tail
            held_counts[d] = 0
    return dropped


def domain_stream(train: np.ndarray, held: np.ndarray, seq_len: int, heldout_seqs: int, name: str) -> tuple[np.ndarray, int, int]:
    """(shard stream, training sequences, held-out sequences): whole training sequences, then the held-out ones.

    Without held-out documents (`held` empty) the held-out sequences are the tail of the training stream.
    """
    sequences = len(train) // seq_len
    if len(held):
        heldout = min(heldout_seqs, len(held) // seq_len)
    else:
        heldout = min(heldout_seqs, max(1, sequences // 4))
        sequences -= heldout
        train, held = train[: sequences * seq_len], train[sequences * seq_len :]
    if sequences < 1 or heldout < 1:
        raise ValueError(f"domain {name!r} has {len(train)} tokens: too few for seq_len {seq_len}")
    return np.concatenate([train[: sequences * seq_len], held[: heldout * seq_len]]), sequences, heldout


def shortest_first(texts: list[str]) -> list[int]:
    """Document indices, shortest first by characters (so any tokenizer orders them the same), ties by position."""
    return sorted(range(len(texts)), key=lambda i: (len(texts[i]), i))


def shortest_heldout(texts: list[str], pieces: list[np.ndarray], tokens_wanted: int, seq_len: int) -> list[int]:
    """Where `split_heldout` finds no documents: the shortest ones (`shortest_first`) to hold out whole, for up to
    `tokens_wanted` tokens, at least one sequence's, at most a quarter of the domain's, never every document.
    Empty when none fit (the held-out text is then the tail of the token stream)."""
    total, held, chosen = sum(len(p) + 1 for p in pieces), 0, []
    for i in shortest_first(texts):
        if held + len(pieces[i]) + 1 > total // 4 or len(chosen) + 1 >= len(texts):
            break
        chosen.append(i)
        held += len(pieces[i]) + 1
        if held >= tokens_wanted:
            break
    return chosen if held >= seq_len else []


def move_to_end(items: list, chosen: list[int]) -> list:
    """`items` with the `chosen` indices moved, in their order, to the end."""
    picked = set(chosen)
    return [x for i, x in enumerate(items) if i not in picked] + [items[i] for i in chosen]


def split_heldout(pieces: list[np.ndarray], tokens_wanted: int) -> int:
    """How many documents, counted from the end, to hold out whole for at least `tokens_wanted` tokens.

    0 when that would take more than a quarter of the domain's tokens or all its documents
    (the held-out text is then the tail of the token stream instead).
    """
    total, held = sum(len(p) + 1 for p in pieces), 0
    for count, piece in enumerate(reversed(pieces), 1):
        held += len(piece) + 1
        if held >= tokens_wanted:
            return count if count < len(pieces) and held <= total // 4 else 0
    return 0


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
    tokenizer=None,
) -> ShardSet:
    """Build (or reuse, after verifying) the data folder of `spec`; return it loaded.

    A shipped build wins over the cache. An existing folder is verified, never silently rebuilt:
    a corrupt one raises ShardError unless `force` is set, which rebuilds into the cache.

    `tokenizer` (a user model's, see `dmix_gym.hf_model`): the scenario's own build is made first, then the same
    documents are tokenized with it into a folder of their own (keyed by the tokenizer's hash), with the own build's
    domains, held-out documents and evaluation pairs, so a policy acts in the same domain space.
    """
    from ..hf_model import tokenizer_fingerprint

    spec_hash = data_spec_hash(spec)
    own = None if tokenizer is None else build_data(spec, data_dir, cache_dir, progress=progress)
    tok_id = None if tokenizer is None else tokenizer_fingerprint(tokenizer)
    existing = find_build(spec, data_dir, cache_dir) if own is None else build_dir(spec, cache_dir, tok_id)
    if (existing / MANIFEST).exists() and not force:
        return load_shard_set(existing, expect_scenario=spec.name, expect_spec_hash=spec_hash)
    root = build_dir(spec, cache_dir, tok_id)
    started = time.perf_counter()
    data_root = resolve_data_dir(data_dir)
    fields = read_fields(spec, data_root, progress)
    preset = spec.preset

    if own is None:
        sample = tokenizer_sample(fields, preset.tokenizer_sample_chars)
        digest = hashlib.sha256("\x00".join(sample).encode()).hexdigest()
        tok_key = tokenizer_key(digest, preset.vocab_size)
        tok_dir = resolve_cache_dir(cache_dir) / "tokenizers" / tok_key
        trained = (tok_dir / "tokenizer.json").exists()
        tokenizer = load_tokenizer(tok_dir) if trained else train_tokenizer(sample, preset.vocab_size, tok_dir)
    else:
        tok_key = f"user-{tok_id}"
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
    pieces = [_tokenize(tokenizer, [doc.text for doc in docs]) for docs in tqdm(domain_docs, desc="tokenize", disable=not progress)]
    wanted = preset.heldout_seqs_per_domain * preset.seq_len + preset.seq_len
    if own is None:
        held_counts = [split_heldout(p, wanted) for p in pieces]
        rules = ["last" if n else "shortest" for n in held_counts]
        for d in np.flatnonzero(np.asarray(held_counts) == 0):
            chosen = shortest_heldout([doc.text for doc in domain_docs[d]], pieces[d], wanted, preset.seq_len)
            held_counts[d] = len(chosen)
            domain_docs[d], pieces[d] = move_to_end(domain_docs[d], chosen), move_to_end(pieces[d], chosen)
    else:  # another tokenizer: the own build's documents, domains and held-out documents, whatever their token counts
        entries = own.manifest["domains"]
        held_counts = [int(e["heldout_documents"]) for e in entries]
        rules = [e.get("heldout_rule", "last") for e in entries]
        if names != [e["name"] for e in entries] or doc_counts != [e["documents"] for e in entries]:
            raise ValueError(f"scenario {spec.name!r}: re-reading its documents for another tokenizer gave other domains "
                             "than its own build; rebuild it (`dmix data build --force`)")
        for d in np.flatnonzero(np.asarray(rules) == "shortest"):
            chosen = shortest_first([doc.text for doc in domain_docs[d]])[: held_counts[d]]
            domain_docs[d], pieces[d] = move_to_end(domain_docs[d], chosen), move_to_end(pieces[d], chosen)
    for k, f in enumerate(spec.fields):
        mine = [d for d in range(len(domain_docs)) if field_of[d] == k]
        field_stats[f.name]["overlapping_heldout"] = drop_overlapping_heldout(mine, domain_docs, pieces, held_counts)
    for d, domain_pieces in enumerate(tqdm(pieces, desc="write shards", disable=not progress)):
        train, held = (np.concatenate([np.append(p, eos) for p in part]).astype(dtype) if part else np.zeros(0, dtype)
                       for part in (domain_pieces[: len(domain_pieces) - held_counts[d]],
                                    domain_pieces[len(domain_pieces) - held_counts[d] :]))
        stream, sequences, heldout = domain_stream(train, held, preset.seq_len, preset.heldout_seqs_per_domain, names[d])
        rule = rules[d] if held_counts[d] else "stream-tail"
        if rule == "stream-tail":
            warnings.warn(f"domain {names[d]!r}: no whole documents fit as held-out text; its held-out sequences are the "
                          "tail of its token stream, which may share documents with its training sequences", stacklevel=2)
        shard = f"shards/{d:03d}.npy"
        domains.append({
            "name": names[d], "field": spec.fields[field_of[d]].name, "documents": doc_counts[d],
            "tokens": int(len(stream)), "train_sequences": sequences, "heldout_sequences": heldout,
            "heldout_documents": held_counts[d], "heldout_rule": rule, "shard": shard, "sha256": write_shard(root / shard, stream),
        })
    for f in spec.fields:
        data = fields[f.name]
        stats = field_stats[f.name]
        stats.update({"role": f.role, "tokens": sum(e["tokens"] for e in domains if e["field"] == f.name),
                      "feedback": {t.kind: t.weight for t in f.feedback}, "eval_pairs": len(data.eval_pairs)})
        if data.eval_pairs:
            stats["eval_file"] = f"eval/{f.name}.jsonl"
            stats["eval_sha256"] = write_eval_set(root / stats["eval_file"], data.eval_pairs)
        stats["probes"] = {}
        for name, pairs in data.probes.items():
            file = f"eval/{f.name}.probe-{name}.jsonl"
            stats["probes"][name] = {"file": file, "pairs": len(pairs), "sha256": write_eval_set(root / file, pairs)}

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
