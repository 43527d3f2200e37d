"""Dataset v2's behaviour levels: valid plans, each behaviour doing what its name says, collected and published."""

import numpy as np
import pytest

from datasets_builder.behaviours import NEAR_BASE, TILTED_QUALITY, BehaviourSpec, dirichlet_quality, plan_behaviours
from dmix_gym.errors import ConfigError

P0 = np.array([0.5, 0.3, 0.2, 0.0, 0.0, 0.0])
P_STAR = np.array([0.0, 0.0, 0.0, 0.5, 0.3, 0.2])
FIELD_OF = np.array([0, 0, 0, 1, 1, 1])
OPTIMUM = (0.45, 0.3, 0.1, 0.0, 0.15, 0.0)


def _entropy(p):
    p = np.clip(p, 1e-12, 1)
    return float(-(p * np.log(p)).sum(-1).mean())


def test_each_behaviour_plans_what_its_name_says():
    spec = BehaviourSpec(dirichlet={0.3: 20, 30.0: 20}, tilted=6, near={"optimum": OPTIMUM}, near_episodes=20)
    episodes = plan_behaviours(P0, P_STAR, FIELD_OF, 5, spec, seed=3, first_index=10)
    assert len(episodes) == spec.episodes() == 66
    assert [e.index for e in episodes] == list(range(10, 76)) and episodes[0].seed == 300_010
    for e in episodes:
        assert e.actions.shape == (5, 6) and np.all(e.actions >= 0) and np.allclose(e.actions.sum(1), 1.0, atol=1e-5)
    by = {}
    for e in episodes:
        by.setdefault(e.quality, []).append(e.actions)
    sparse, dense = np.stack(by[dirichlet_quality(0.3)]), np.stack(by[dirichlet_quality(30.0)])
    assert _entropy(sparse) < _entropy(dense) - 0.3  # a small concentration gives corner-like mixtures
    near = np.stack(by[NEAR_BASE]).mean((0, 1))
    assert np.abs(near - np.asarray(OPTIMUM)).max() < 0.08  # noisy copies centre on the given mixture
    tilted = np.stack(by[TILTED_QUALITY])[:, -1]  # the last step, where Algorithm 1 has drifted toward its target
    top = tilted[:, 3:].max(1) / tilted[:, 3:].sum(1)
    assert np.mean(top) > P_STAR.max() + 0.05  # one target domain pulled above its p* share
    assert spec.labels() == {dirichlet_quality(0.3): "dirichlet-0.3", dirichlet_quality(30.0): "dirichlet-30",
                             NEAR_BASE: "near-optimum", TILTED_QUALITY: "tilted"}
    again = plan_behaviours(P0, P_STAR, FIELD_OF, 5, spec, seed=3, first_index=10)
    assert all(np.array_equal(a.actions, b.actions) for a, b in zip(episodes, again))  # a plan repeats


@pytest.mark.parametrize("bad", [dict(dirichlet={0.0: 2}), dict(tilted=-1), dict(near={"x": (0.0, 0.0)}),
                                 dict(near={"x": (1.0, -0.5)})])
def test_a_bad_spec_is_one_clear_error(bad):
    with pytest.raises(ConfigError):
        BehaviourSpec(**bad)


def test_a_near_mixture_of_the_wrong_size_is_refused():
    with pytest.raises(ConfigError, match="has 2 weights, the domain space 6"):
        plan_behaviours(P0, P_STAR, FIELD_OF, 3, BehaviourSpec(near={"x": (0.5, 0.5)}, near_episodes=1))


def test_a_collection_with_behaviours_stages_and_publishes_their_labels(tiny_data, tmp_path, monkeypatch):
    from datasets_builder.collection import collect
    from datasets_builder.publish import dmix_metadata, publish
    from tests.helpers import tiny_scenario

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    spec = BehaviourSpec(dirichlet={0.3: 1}, tilted=1)
    folder = collect(tiny_scenario(tiny_data), name="behaviours", total=1, qualities=(1,), workers=1,
                     data_dir=str(tiny_data), progress=False, behaviours=spec)
    quality = dmix_metadata(publish(folder, overwrite=True))["episode_quality"]
    assert quality == [1, dirichlet_quality(0.3), TILTED_QUALITY]


def test_a_behaviours_file_resolves_searched_specs_on_the_scenario_and_bad_files_are_clear(tiny_data, tmp_path):
    from dmix.pipeline import load_behaviours
    from dmix_gym.errors import MissingFileError
    from tests.helpers import tiny_scenario

    scenario = tiny_scenario(tiny_data)
    good = tmp_path / "behaviours.json"
    good.write_text('{"dirichlet": {"0.3": 2}, "near": {"line": "static:target-share=0.5", "all-source": "domains:source=1"},'
                    ' "near_episodes": 3}')
    spec = load_behaviours(good, scenario, str(tiny_data))
    assert spec.episodes() == 2 + 2 * 3 and spec.dirichlet == {0.3: 2}
    for mixture in spec.near.values():
        assert np.isclose(sum(mixture), 1.0)
    assert min(spec.near["line"]) > 0  # half p0, half p*: every domain has weight
    with pytest.raises(MissingFileError, match="no behaviours file"):
        load_behaviours(tmp_path / "missing.json", scenario, str(tiny_data))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON at line 1"):
        load_behaviours(tmp_path / "bad.json", scenario, str(tiny_data))
