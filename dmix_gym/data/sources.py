"""Read a field's raw records: training documents and evaluation question/answer pairs."""

from __future__ import annotations

import ast
import glob
import gzip
import hashlib
import json
import sysconfig
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..errors import ConfigError, MissingFileError
from .spec import SourceSpec

CODE_HELDOUT_EVERY = 10  # one Python file in this many (by path hash) is held out for evaluation
_SKIP_PARTS = {"test", "tests", "site-packages", "idlelib", "__pycache__", "lib2to3"}


@dataclass(frozen=True)
class Document:
    """One training document and where it came from."""

    text: str
    label: str | None
    origin: str  # "file:line" or "hf_id[index]"


@dataclass(frozen=True)
class EvalPair:
    """One evaluation question and its reference answer."""

    question: str
    answer: str
    origin: str


class DataFileError(MissingFileError):
    """A raw data file is missing or malformed; the message names the file (and line)."""


def expand_files(patterns: tuple[str, ...], data_dir: Path) -> list[Path]:
    """Resolve globs against the data directory; every pattern must match at least one file."""
    if not patterns:
        raise DataFileError("a 'files' source needs at least one file pattern")
    paths: list[Path] = []
    for pattern in patterns:
        full = pattern if Path(pattern).is_absolute() else str(data_dir / pattern)
        matches = sorted(Path(p) for p in glob.glob(full, recursive=True))
        if not matches:
            raise DataFileError(f"no file matches {full!r} (data directory: {data_dir}); set --data-dir or $DMIX_DATA_DIR")
        paths.extend(matches)
    return paths


def _iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            for lineno, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataFileError(f"{path}:{lineno}: malformed JSON ({err.msg})") from None
                if not isinstance(record, dict):
                    raise DataFileError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
                yield lineno, record
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DataFileError(f"{path}: cannot read ({err})") from None


def iter_records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (origin, record) from one JSONL, JSONL.gz, Parquet or text file."""
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz", ".json.gz", ".ndjson")):
        for lineno, record in _iter_jsonl(path):
            yield f"{path}:{lineno}", record
    elif name.endswith(".parquet"):
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as err:  # pyarrow raises several types for a bad file
            raise DataFileError(f"{path}: cannot read Parquet ({err})") from None
        for index, record in enumerate(table.to_pylist()):
            yield f"{path}[{index}]", record
    elif name.endswith((".txt", ".txt.gz", ".md")):
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
            yield f"{path}", {"text": handle.read()}
    else:
        raise DataFileError(f"{path}: unsupported file type (use .jsonl, .jsonl.gz, .parquet or .txt)")


def _iter_hf(spec: SourceSpec) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        import datasets
    except ImportError:
        raise ImportError("reading a Hugging Face dataset id needs `datasets`: pip install 'dmix[hf]'") from None
    try:
        dataset = datasets.load_dataset(spec.hf_id, spec.hf_config, split=spec.hf_split)
    except Exception as err:
        raise DataFileError(
            f"cannot load Hugging Face dataset {spec.hf_id!r} (config {spec.hf_config!r}, split {spec.hf_split!r}): {err}. "
            "Offline? Mirror it as local JSONL and use a 'files' source."
        ) from None
    for index, record in enumerate(dataset):
        yield f"{spec.hf_id}[{index}]", dict(record)


def _record_stream(spec: SourceSpec, data_dir: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """The source's records; where it names `labels`, only the labelled records of those labels (and every record
    without a label, so an unlabelled file beside a labelled one is read whole)."""
    records = _all_records(spec, data_dir)
    if spec.labels is None:
        return records
    keep = set(spec.labels)
    return ((origin, r) for origin, r in records
            if not spec.label_key or r.get(spec.label_key) is None or str(r.get(spec.label_key)) in keep)


def _all_records(spec: SourceSpec, data_dir: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    if spec.kind == "files":
        for path in expand_files(spec.files, data_dir):
            yield from iter_records(path)
    elif spec.kind == "hf":
        yield from _iter_hf(spec)
    else:
        raise ConfigError(f"unknown source kind {spec.kind!r}")


def _required(record: dict[str, Any], key: str, origin: str) -> str:
    value = record.get(key)
    if not isinstance(value, str):
        raise DataFileError(f"{origin}: record has no string {key!r} (keys: {sorted(record)})")
    return value


def read_documents(spec: SourceSpec, data_dir: Path, limit: int | None = None) -> list[Document]:
    """A field's training documents, in file order, at most `limit` of them."""
    if spec.kind == "python":
        docs = [d for d in python_tree_documents(spec.root)]
    else:
        docs = []
        for origin, record in _record_stream(spec, data_dir):
            text = _required(record, spec.text_key, origin)
            label = record.get(spec.label_key) if spec.label_key else None
            if text.strip():
                docs.append(Document(text, str(label) if label is not None else None, origin))
    if limit is not None and len(docs) > limit:
        docs = spread_subset(docs, limit)
    return docs


def read_eval_pairs(spec: SourceSpec, data_dir: Path) -> list[EvalPair]:
    """A field's evaluation question/answer pairs, in file order."""
    if spec.kind == "python":
        return python_tree_eval_pairs(spec.root)
    pairs = []
    for origin, record in _record_stream(spec, data_dir):
        question = _required(record, spec.question_key, origin)
        answer = record.get(spec.answer_key)
        if not isinstance(answer, str):
            answer = str(answer) if answer is not None else _required(record, spec.answer_key, origin)
        if question.strip() and answer.strip():
            pairs.append(EvalPair(question, answer, origin))
    return pairs


def spread_subset(items: list, limit: int) -> list:
    """`limit` items spread evenly over the list, so every file and label keeps its share."""
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


# --- Python source trees (the code field) -------------------------------------------------------


def default_python_root() -> Path:
    """This interpreter's standard library."""
    return Path(sysconfig.get_paths()["stdlib"])


def python_files(root: str | None) -> tuple[list[Path], list[Path]]:
    """(training files, held-out evaluation files) of a Python tree, split by a hash of the path."""
    base = Path(root) if root else default_python_root()
    if not base.is_dir():
        raise DataFileError(f"Python source tree {base} does not exist")
    train, heldout = [], []
    for path in sorted(base.rglob("*.py")):
        rel = path.relative_to(base)
        if _SKIP_PARTS & set(rel.parts[:-1]) or rel.name.startswith("test_"):
            continue
        bucket = int(hashlib.sha256(str(rel).encode()).hexdigest(), 16) % CODE_HELDOUT_EVERY
        (heldout if bucket == 0 else train).append(path)
    return train, heldout


def _package_label(path: Path, base: Path) -> str:
    rel = path.relative_to(base)
    return rel.parts[0] if len(rel.parts) > 1 else "toplevel"


def python_tree_documents(root: str | None) -> Iterator[Document]:
    """One document per training file of the tree, labelled by its top-level package."""
    base = Path(root) if root else default_python_root()
    train, _ = python_files(root)
    for path in train:
        text = path.read_text(encoding="utf-8", errors="replace")
        if text.strip():
            yield Document(text, _package_label(path, base), str(path))


def function_pairs(source: str, origin: str) -> list[EvalPair]:
    """(signature + docstring -> body) pairs for every documented function of a module."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    lines = source.splitlines(keepends=True)
    pairs = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or ast.get_docstring(node) is None:
            continue
        doc_node, rest = node.body[0], node.body[1:]
        if not rest:
            continue
        function = textwrap.dedent("".join(lines[node.lineno - 1 : node.end_lineno])).splitlines(keepends=True)
        split = doc_node.end_lineno - node.lineno + 1
        head, body = "".join(function[:split]), "".join(function[split:])
        if body.strip():
            pairs.append(EvalPair(head, body, f"{origin}:{node.lineno}"))
    return pairs


def python_tree_eval_pairs(root: str | None) -> list[EvalPair]:
    """Function pairs from the held-out files of the tree (never part of the training corpus)."""
    _, heldout = python_files(root)
    pairs: list[EvalPair] = []
    for path in heldout:
        pairs.extend(function_pairs(path.read_text(encoding="utf-8", errors="replace"), str(path)))
    return pairs


