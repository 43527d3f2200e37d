"""The real data shipped in the package: intact, and the default scenario builds from it."""

import hashlib
import shutil

import numpy as np
import pytest

from dmix_gym.data import build as build_module
from dmix_gym.data import build_data, find_build, load_data_spec
from dmix_gym.data.decontaminate import eval_fingerprint, is_contaminated
from dmix_gym.utils.paths import builtin_data_dir, resolve_data_dir


def test_builtin_data_matches_its_manifest(monkeypatch):
    monkeypatch.delenv("DMIX_DATA_DIR", raising=False)
    root = resolve_data_dir()
    assert root == builtin_data_dir() and (root / "licenses").is_dir()
    lines = (root / "MANIFEST.sha256").read_text().split("\n")
    listed = dict(reversed(line.split("  ", 1)) for line in lines if line)
    assert len(listed) == 12
    for name, digest in listed.items():
        assert hashlib.sha256((root / name).read_bytes()).hexdigest() == digest, name


def test_smoke_scenario_builds_from_builtin_data():
    spec = load_data_spec("general-math", "smoke")
    shards = build_data(spec, progress=False)
    m = shards.manifest
    assert m["scenario"] == "general-math" and m["preset"] == "smoke"
    assert [f for f in m["fields"]] == ["general", "math"]
    per_field = {f: sum(1 for d in m["domains"] if d["field"] == f) for f in m["fields"]}
    assert per_field == {"general": 2, "math": 2}
    assert np.isclose(sum(shards.domain_space.p0), 1) and np.isclose(sum(shards.domain_space.p_star), 1)
    assert all(len(pairs) == spec.preset.eval_pairs for pairs in shards.eval_pairs.values())
    assert list(shards.eval_pairs) == ["math"]  # the general field is fed back by its held-out text
    assert sorted(shards.probe_pairs) == ["general/mmlu_stem", "math/gsm8k"]
    assert all(len(pairs) == spec.preset.probe_pairs for pairs in shards.probe_pairs.values())
    # No evaluation or probe pair survives in the shards' source documents.
    pairs = [p for named in (shards.eval_pairs, shards.probe_pairs) for group in named.values() for p in group]
    fingerprint = eval_fingerprint(pairs)
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast.from_pretrained(str(shards.tokenizer_dir))
    sample = tok.decode(np.asarray(shards.shards[0][:20_000]).tolist())
    assert not is_contaminated(sample, fingerprint)
    # The held-out text is whole documents that share no 13-word window with the domain's training text.
    entry, length = m["domains"][0], m["seq_len"]
    assert entry["heldout_documents"] >= 1
    split = entry["train_sequences"] * length
    heldout = tok.decode(np.asarray(shards.shards[0][split:]).tolist())
    assert not is_contaminated(tok.decode(np.asarray(shards.shards[0][:split]).tolist()), eval_fingerprint([(heldout, "")]))


def test_code_scenario_spec_loads():
    spec = load_data_spec("general-code", "smoke")
    assert spec.target_fields[0].train.kind == "python"


def test_the_default_protocol_tasks_read_their_shipped_build_and_build_nothing(tmp_path, monkeypatch):
    from leaderboard.protocol import DEFAULT_PROTOCOL, get_protocol

    monkeypatch.delenv("DMIX_DATA_DIR", raising=False)
    monkeypatch.setattr(build_module, "read_fields", lambda *a, **k: pytest.fail("built a shipped task's data"))
    for task in get_protocol(DEFAULT_PROTOCOL).tasks:
        shards = build_data(task.make_scenario().data, cache_dir=tmp_path, progress=False)
        assert shards.root.parent == build_module.SHIPPED_BUILDS, task.name
    assert not any(tmp_path.iterdir())


def test_a_shipped_build_serves_only_the_raw_data_it_was_built_from(tmp_path):
    spec = load_data_spec("general-math", "cpu")
    copy = tmp_path / "copy"
    shutil.copytree(builtin_data_dir(), copy)
    assert find_build(spec, data_dir=copy).parent == build_module.SHIPPED_BUILDS  # the same files elsewhere
    (copy / "MANIFEST.sha256").write_text("edited corpus\n")
    assert find_build(spec, data_dir=copy, cache_dir=tmp_path / "cache").parent == tmp_path / "cache" / "data"
