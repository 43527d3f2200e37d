"""Feedback kinds (Q/A, held-out text, both), probes, and the errors a bad feedback spec gives."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

import dmix_gym  # noqa: F401
from dmix_gym import Scenario
from dmix_gym.data.spec import FieldSpec, load_data_spec
from dmix_gym.feedback import field_feedback
from dmix_gym.policy import Replay, rollout
from dmix_gym.scenario import PRESETS
from tests.helpers import tiny_scenario, tiny_spec, write_jsonl


def test_field_feedback_combines_qa_and_heldout_text():
    qa = np.array([np.nan, -2.0])  # the source field has no rewarded Q/A set
    loss = np.array([1.0, 3.0, 4.0, 6.0])  # per domain: two source, two target
    within = np.array([0.75, 0.25, 0.5, 0.5])  # p0 within the source field, p* within the target
    field_of = np.array([0, 0, 1, 1])
    f = field_feedback(qa, loss, qa_weight=np.array([0.0, 0.5]), heldout_weight=np.array([1.0, 0.5]),
                       within=within, field_of=field_of)
    assert f[0] == pytest.approx(-(0.75 * 1.0 + 0.25 * 3.0))
    assert f[1] == pytest.approx(0.5 * -2.0 + 0.5 * -(0.5 * 4.0 + 0.5 * 6.0))


def _episode(tiny_data, share: float, seed: int = 0, **scenario_changes):
    scenario = tiny_scenario(tiny_data, **scenario_changes)
    env = gym.make("DataMix-v0", scenario=scenario.to_dict(), data_dir=str(tiny_data), progress=False, timing=False)
    base = env.unwrapped
    return rollout(Replay((1 - share) * base.p0 + share * base.p_star), env, seed=seed), base


def test_target_only_training_lowers_the_source_fields_heldout_feedback(tiny_data):
    """A planted corpus (animals and places vs. sums): training on the sums alone must cost the source field."""
    target_only, base = _episode(tiny_data, share=1.0, max_steps=6)
    source_only, _ = _episode(tiny_data, share=0.0, max_steps=6)
    assert base.heldout_weight.tolist() == [1.0, 0.0] and base.qa_weight.tolist() == [0.0, 1.0]
    assert target_only.final_feedback[0] < target_only.feedback[0, 0] - 0.05  # forgot the source field
    assert source_only.final_feedback[0] > target_only.final_feedback[0] + 0.05
    assert target_only.final_feedback[1] > source_only.final_feedback[1]  # and learned the target


def test_heldout_feedback_is_the_weighted_domain_loss_and_probes_stay_out_of_the_observation(tiny_data):
    episode, base = _episode(tiny_data, share=0.5)
    source = np.array(base.domain_space.field_of) == 0
    within = np.asarray(base.p0)[source] / np.sum(np.asarray(base.p0)[source])
    np.testing.assert_allclose(episode.feedback[:, 0], -(episode.domain_loss[:, source] @ within), rtol=1e-5)
    # The source field's unrewarded Q/A set is a probe: reported, never in the observation.
    assert base.probe_names == ("general/eval",)
    assert episode.infos["probes"].shape == (len(episode.rewards) + 1, 1)
    assert np.all(np.isfinite(episode.infos["probes"]))
    d, k = base.num_domains, base.num_fields
    np.testing.assert_allclose(episode.observations[:, d:d + k], episode.feedback, rtol=1e-6)


def test_qa_and_heldout_weights_mix(tiny_data):
    spec = tiny_spec(tiny_data)
    general = FieldSpec.from_dict({"name": "general", "role": "source", "train": {"files": ["general/*.jsonl"]},
                                   "eval": {"files": ["eval/general.jsonl"]},
                                   "feedback": [{"kind": "qa", "weight": 0.5}, {"kind": "heldout", "weight": 0.5}]})
    model, train = PRESETS["smoke"]
    scenario = Scenario(data=spec.__class__(spec.name, (general, spec.fields[1]), spec.preset), model=model,
                        train=train.__class__(**{**train.__dict__, "base_tokens": 16_384}))
    env = gym.make("DataMix-v0", scenario=scenario.to_dict(), data_dir=str(tiny_data), progress=False).unwrapped
    _, info = env.reset(seed=0)
    evaluation = env.evaluate()
    source = np.array(env.domain_space.field_of) == 0
    within = np.asarray(env.p0)[source] / np.sum(np.asarray(env.p0)[source])
    expected = 0.5 * evaluation.qa[0] - 0.5 * evaluation.domain_loss[source] @ within
    assert info["feedback"][0] == pytest.approx(expected, rel=1e-5)
    assert env.probe_names == ()


def test_scenarios_saved_before_feedback_kinds_keep_their_qa_feedback(tiny_data):
    saved = tiny_scenario(tiny_data).to_dict()
    for f in saved["data"]["fields"]:
        del f["feedback"], f["probes"]
    restored = Scenario.from_dict(saved)
    assert [f.feedback_weight("qa") for f in restored.data.fields] == [1.0, 1.0]
    assert [f.feedback_weight("heldout") for f in restored.data.fields] == [0.0, 0.0]


def test_builtin_scenarios_feed_source_fields_by_heldout_text():
    for name in ("general-math", "general-code", "wiki-math", "dbpedia-math"):
        spec = load_data_spec(name, "smoke")
        assert spec.source_field.feedback_weight("heldout") == 1.0 and spec.source_field.feedback_weight("qa") == 0.0
        assert all(f.feedback_weight("qa") == 1.0 for f in spec.target_fields)
        assert "mmlu_stem" in [p.name for p in spec.source_field.all_probes]


GOOD_FIELD = {"name": "general", "role": "source", "train": {"files": ["general/*.jsonl"]}}
TARGET = {"name": "math", "role": "target", "train": {"files": ["math/*.jsonl.gz"]}, "eval": {"files": ["eval/math.jsonl"]}}


@pytest.mark.parametrize("change, message", [
    ({"feedback": [{"kind": "perplexity"}]}, "feedback kind 'perplexity' is not one of"),
    ({"feedback": [{"kind": "heldout", "weight": -1}]}, "feedback weight -1 of kind 'heldout' must be a positive number"),
    ({"feedback": [{"kind": "qa"}]}, "feedback kind 'qa' needs an 'eval' Q/A set"),
    ({"feedback": [{"kind": "heldout", "scale": 2}]}, r"unknown feedback key\(s\) \['scale'\]"),
    ({"feedback": [{"kind": "heldout"}, {"kind": "heldout"}]}, "more than once"),
    ({"probes": [{"files": ["eval/general.jsonl"]}]}, "a probe needs a 'name'"),
    ({"feedbacks": ["heldout"]}, r"unknown field key\(s\) \['feedbacks'\]"),
])
def test_a_bad_feedback_spec_names_the_file_and_field(tmp_path, change, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"name": "bad", "fields": [{**GOOD_FIELD, **change}, TARGET]}))
    with pytest.raises(ValueError, match=message) as error:
        load_data_spec(str(path), "smoke")
    assert str(error.value).startswith(f"{path}: field 'general': ")


def test_malformed_scenario_json_names_line_and_column(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"name": "x",\n  "fields": [,]}')
    with pytest.raises(ValueError, match=rf"{path}: not valid JSON at line 2, column 14"):
        load_data_spec(str(path), "smoke")


def test_probes_are_decontaminated_from_training_data(tmp_path):
    from dmix_gym.data import build_data
    from tests.helpers import write_tiny_corpus

    data = write_tiny_corpus(tmp_path / "data")
    leaked = "The quick brown fox jumps over the lazy dog while thirteen distinct words appear in this probe answer text"
    write_jsonl(data / "general" / "b.jsonl", [{"text": leaked, "domain": "nature"}])
    write_jsonl(data / "eval" / "probe.jsonl", [{"question": "Finish the sentence.", "answer": leaked}])
    spec = tiny_spec(data)
    general = FieldSpec.from_dict({**GOOD_FIELD, "probes": [{"name": "leak", "files": ["eval/probe.jsonl"]}]})
    shards = build_data(spec.__class__(spec.name + "-probe", (general, spec.fields[1]), spec.preset), data,
                        tmp_path / "cache", progress=False)
    assert shards.manifest["fields"]["general"]["decontaminated"] == 1
    assert list(shards.probe_pairs) == ["general/leak"]
