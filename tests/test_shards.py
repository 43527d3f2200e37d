
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
