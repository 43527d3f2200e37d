"""The real data shipped in the package: intact, and the default scenario builds from it."""

import hashlib

import numpy as np

from dmix_gym.data import build_data, load_data_spec
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
