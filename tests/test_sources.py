import gzip

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dmix_gym.data.sources import DataFileError, function_pairs, python_files, read_documents, read_eval_pairs
from dmix_gym.data.spec import SourceSpec
from tests.helpers import write_jsonl


def test_jsonl_and_gz(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"text": "alpha beta", "domain": "x"}, {"text": "gamma"}])
    write_jsonl(tmp_path / "b.jsonl.gz", [{"text": "delta", "domain": "y"}], gz=True)
    docs = read_documents(SourceSpec(files=("*.jsonl", "*.jsonl.gz")), tmp_path)
    assert [d.text for d in docs] == ["alpha beta", "gamma", "delta"]
    assert [d.label for d in docs] == ["x", None, "y"]
    assert docs[0].origin.endswith("a.jsonl:1")


def test_parquet(tmp_path):
    pq.write_table(pa.table({"body": ["one two", "three"], "topic": ["a", "b"]}), tmp_path / "c.parquet")
    docs = read_documents(SourceSpec(files=("c.parquet",), text_key="body", label_key="topic"), tmp_path)
    assert [(d.text, d.label) for d in docs] == [("one two", "a"), ("three", "b")]


def test_plain_text(tmp_path):
    (tmp_path / "notes.txt").write_text("a whole document\nover two lines\n")
    with gzip.open(tmp_path / "more.txt.gz", "wt") as handle:
        handle.write("another one")
    docs = read_documents(SourceSpec(files=("*.txt", "*.txt.gz"), label_key=None), tmp_path)
    assert [d.text for d in docs] == ["a whole document\nover two lines\n", "another one"]


def test_malformed_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "fine"}\n{"text": broken\n')
    with pytest.raises(DataFileError, match=r"bad\.jsonl:2: malformed JSON"):
        read_documents(SourceSpec(files=("bad.jsonl",)), tmp_path)


def test_missing_key_and_missing_file(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"body": "x"}])
    with pytest.raises(DataFileError, match=r"a\.jsonl:1: record has no string 'text'"):
        read_documents(SourceSpec(files=("a.jsonl",)), tmp_path)
    with pytest.raises(DataFileError, match="no file matches"):
        read_documents(SourceSpec(files=("nothing/*.jsonl",)), tmp_path)


def test_eval_pairs(tmp_path):
    write_jsonl(tmp_path / "e.jsonl", [{"question": "Q1?", "answer": "A1"}, {"question": "Q2?", "answer": 3}])
    pairs = read_eval_pairs(SourceSpec(files=("e.jsonl",)), tmp_path)
    assert [(p.question, p.answer) for p in pairs] == [("Q1?", "A1"), ("Q2?", "3")]


def test_hf_source_gives_clear_error(tmp_path):
    spec = SourceSpec(kind="hf", hf_id="no-such-user/no-such-dataset-dmix")
    with pytest.raises((ImportError, DataFileError), match="datasets|no-such-dataset"):
        read_documents(spec, tmp_path)


def test_python_tree_pairs_are_held_out_by_file(tmp_path):
    for i in range(30):
        (tmp_path / f"mod{i}.py").write_text(
            f'def f{i}(x):\n    """Add {i} to x."""\n    y = x + {i}\n    return y\n'
        )
    train, heldout = python_files(str(tmp_path))
    assert heldout and train and not set(train) & set(heldout)
    pairs = function_pairs((tmp_path / "mod3.py").read_text(), "mod3.py")
    assert pairs[0].question.startswith("def f3(x):") and '"""Add 3 to x."""' in pairs[0].question
    assert pairs[0].answer == "    y = x + 3\n    return y\n"
    held_pairs = read_eval_pairs(SourceSpec(kind="python", root=str(tmp_path)), tmp_path)
    train_docs = read_documents(SourceSpec(kind="python", root=str(tmp_path)), tmp_path)
    assert {p.origin.rsplit(":", 1)[0] for p in held_pairs} == {str(p) for p in heldout}
    assert not {d.origin for d in train_docs} & {str(p) for p in heldout}
