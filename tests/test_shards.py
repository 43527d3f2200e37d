
import numpy as np
import pytest

from dmix_gym.data import ShardError, build_data, load_shard_set
from tests.helpers import tiny_spec


@pytest.fixture()
def built(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("DMIX_CACHE_DIR", str(tmp_path / "cache"))
    return build_data(tiny_spec(tiny_data), data_dir=tiny_data, progress=False)


def test_manifest_describes_a_valid_space(built):
    m = built.manifest
    space = built.domain_space
    assert np.isclose(sum(space.p0), 1) and np.isclose(sum(space.p_star), 1)
    assert all(p == 0 for p, k in zip(space.p_star, space.field_of) if k == 0)
    assert all(p == 0 for p, k in zip(space.p0, space.field_of) if k != 0)
    assert {d["field"] for d in m["domains"]} == {"general", "math"}
    for d, entry in enumerate(m["domains"]):
        assert len(built.shards[d]) == entry["tokens"] == (entry["train_sequences"] + entry["heldout_sequences"]) * m["seq_len"]
        assert len(entry["sha256"]) == 64
    assert m["tokenizer"]["vocab_size"] <= 512


def test_rebuild_reuses_good_data(built, tiny_data):
    before = (built.root / "manifest.json").stat().st_mtime_ns
    again = build_data(tiny_spec(tiny_data), data_dir=tiny_data, progress=False)
    assert again.root == built.root
    assert (built.root / "manifest.json").stat().st_mtime_ns == before


def test_corrupt_shard_is_named_and_not_rebuilt(built, tiny_data):
    shard = built.root / built.manifest["domains"][1]["shard"]
    raw = bytearray(shard.read_bytes())
    raw[-1] ^= 0xFF
    shard.write_bytes(bytes(raw))
    with pytest.raises(ShardError, match=rf"{shard.name}.*corrupt"):
        build_data(tiny_spec(tiny_data), data_dir=tiny_data, progress=False)
    assert shard.read_bytes() == bytes(raw)  # nothing silently rebuilt over it


def test_missing_shard_is_named(built):
    shard = built.root / built.manifest["domains"][0]["shard"]
    shard.unlink()
    with pytest.raises(ShardError, match=rf"{shard.name}.*missing"):
        load_shard_set(built.root)


def test_manifest_of_another_scenario(built):
    with pytest.raises(ShardError, match="built for scenario 'tiny', not 'general-math'"):
        load_shard_set(built.root, expect_scenario="general-math")


def test_corrupt_manifest_and_eval_set(built):
    eval_file = built.root / built.manifest["fields"]["math"]["eval_file"]
    eval_file.write_text(eval_file.read_text().replace("+", "-"))
    with pytest.raises(ShardError, match=r"math\.jsonl.*corrupt"):
        load_shard_set(built.root)
    (built.root / "manifest.json").write_text("{not json")
    with pytest.raises(ShardError, match="manifest.json: corrupt manifest"):
        load_shard_set(built.root)


def test_shortest_documents_are_held_out_where_the_last_ones_cannot_be():
    from dmix_gym.data.build import move_to_end, shortest_heldout

    texts = ["x" * 900, "x" * 30, "x" * 40, "x" * 20]
    pieces = [np.zeros(len(t) // 3, np.int64) for t in texts]  # 300, 10, 13, 6 tokens
    assert shortest_heldout(texts, pieces, tokens_wanted=20, seq_len=8) == [3, 1, 2]
    assert shortest_heldout(texts, pieces, tokens_wanted=20, seq_len=64) == []  # not a sequence's worth: none
    assert shortest_heldout(texts[:1], pieces[:1], tokens_wanted=20, seq_len=8) == []  # never every document
    assert move_to_end(["a", "b", "c", "d"], [3, 1]) == ["a", "c", "d", "b"]


def test_a_domain_whose_last_documents_are_too_long_holds_out_whole_short_ones(tiny_data, tmp_path):
    """Without the fallback its held-out text was the tail of its training stream (wiki-math's general/c07)."""
    import json
    import random
    import shutil
    from dataclasses import replace

    from dmix_gym.data.tokenizer import load_tokenizer
    from tests.helpers import write_jsonl

    corpus = tmp_path / "corpus"  # a copy: the tiny corpus is shared by other tests
    shutil.copytree(tiny_data, corpus)
    rng = random.Random(1)
    long_doc = " ".join(f"long{rng.randrange(3000)}" for _ in range(1500))
    short_docs = [" ".join(f"short{rng.randrange(3000)}" for _ in range(10)) for _ in range(4)]
    general = corpus / "general" / "a.jsonl"
    records = [json.loads(line) for line in general.read_text().splitlines()]
    write_jsonl(general, records + [{"text": t, "domain": "rare"} for t in [long_doc, *short_docs]])
    spec = tiny_spec(corpus)
    spec = replace(spec, preset=replace(spec.preset, domains_per_field=3))  # 'rare' keeps a domain of its own
    shards = build_data(spec, data_dir=corpus, cache_dir=tmp_path / "cache", progress=False)
    entries = shards.manifest["domains"]
    d = next(i for i, e in enumerate(entries) if e["name"].endswith("rare"))
    assert entries[d]["heldout_rule"] == "shortest" and 1 <= entries[d]["heldout_documents"] <= 4
    tokenizer = load_tokenizer(shards.root / "tokenizer")
    first_held = entries[d]["train_sequences"]
    held = tokenizer.decode(np.concatenate([shards.sequence(d, first_held + i) for i in range(entries[d]["heldout_sequences"])]))
    train = tokenizer.decode(np.concatenate([shards.sequence(d, i) for i in range(first_held)]))
    assert "short" in held and "long" not in held  # whole short documents, none of the training text
    assert "long" in train
    assert all(e["heldout_rule"] in ("last", "shortest") for e in entries)
