"""Collection through the env: staging, resume after a killed run, Minari round-trip, scenario checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from datasets_builder.collection import DATASET_VERSION, CollectionError, collect, finished, staging_dir
from datasets_builder.publish import (
    REFERENCES_FILE,
    check_scenario,
    dataset_scenario,
    dmix_metadata,
    env_spec,
    episodes_of_quality,
    publish,
    write_references,
)
from dmix_gym.scenario import override
from tests.helpers import tiny_scenario

QUALITIES = (1, 50)


@pytest.fixture()
def minari_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    return tmp_path / "minari"


@pytest.fixture(scope="module")
def staged(tiny_data, tmp_path_factory):
    os.environ["DMIX_CACHE_DIR"] = str(tmp_path_factory.getbasetemp() / "cache")
    scenario = tiny_scenario(tiny_data)
    folder = collect(scenario, name="roundtrip", total=4, qualities=QUALITIES, workers=1, data_dir=str(tiny_data),
                     progress=False)
    return scenario, folder


def test_collect_stages_every_planned_episode(staged):
    scenario, folder = staged
    assert finished(folder) == {0, 1, 2, 3}
    plan = json.loads((folder / "plan.json").read_text())
    assert [e["quality"] for e in plan["episodes"]] == [1, 1, 50, 50]
    with np.load(folder / "episode-000002.npz") as episode:
        steps = len(episode["actions"])
        assert episode["observations"].shape[0] == steps + 1
        assert np.allclose(episode["actions"], np.asarray(plan["episodes"][2]["actions"])[:steps], atol=1e-5)
        assert episode["info/feedback"].shape == (steps + 1, 2)


def test_minari_round_trip(staged, minari_root, tiny_data):
    import gymnasium as gym
    import minari

    scenario, folder = staged
    dataset = publish(folder, overwrite=True)
    again = minari.load_dataset(dataset.spec.dataset_id)
    assert again.total_episodes == 4
    env = gym.make("DataMix-v0", scenario=scenario.to_dict(), data_dir=str(tiny_data), progress=False)
    assert again.spec.action_space == env.action_space
    assert again.spec.observation_space == env.observation_space
    episode = again[2]
    assert set(episode.infos) >= {"feedback", "domain_loss", "tokens", "mixture", "train_loss"}
    assert episode.infos["domain_loss"].shape == (len(episode.rewards) + 1, env.unwrapped.num_domains)
    meta = dmix_metadata(again)
    assert np.isclose(sum(meta["p0"]), 1) and np.isclose(sum(meta["p_star"]), 1)
    assert meta["episode_quality"] == [1, 1, 50, 50] and episodes_of_quality(again, 50) == [2, 3]
    assert len(meta["feedback_mean"]) == 2 and all(s > 0 for s in meta["feedback_std"])
    assert dataset_scenario(again) == scenario
    recovered = again.recover_environment(eval_env=True)
    assert recovered.unwrapped.scenario == scenario
    # Re-publishing the same collection (a resumed script) keeps the dataset; a changed one is never overwritten silently.
    assert publish(folder).total_episodes == 4
    # Measured reference returns ride along with the collection and make Minari's normalised score work.
    with pytest.raises(ValueError, match="Reference score not provided"):
        minari.get_normalized_score(again, np.array([1.0]))
    with pytest.raises(ValueError, match="must exceed"):
        write_references(folder, 2.0, 1.0, 3, {})
    write_references(folder, -1.0, 3.0, 3, {"ref_min_score": "test", "ref_max_score": "test"})
    with pytest.raises(FileExistsError, match="differs"):
        publish(folder)
    scored = publish(folder, overwrite=True)
    assert minari.get_normalized_score(scored, np.array([-1.0, 1.0, 3.0])).tolist() == [0.0, 0.5, 1.0]
    # d3rlpy reads it as any Minari dataset: every transition, and the env rebuilt from the dataset.
    from d3rlpy.datasets import get_minari

    buffer, recovered_env = get_minari(scored.spec.dataset_id)
    assert sum(episode.size() for episode in buffer.episodes) == scored.total_steps
    assert recovered_env.unwrapped.scenario == scenario
    (folder / REFERENCES_FILE).unlink()  # the other tests publish this collection as it was


def test_publishing_builds_no_env(staged, minari_root, monkeypatch):
    """Minari builds the env it is given as a spec (a DataMix-v0 pretrains its base proxy: minutes per draw on a fresh
    machine); publish hands it the spec and spaces alone, and the dataset still rebuilds the env."""
    import gymnasium as gym

    def no_env(*args, **kwargs):
        raise AssertionError("publish built an env")

    _, folder = staged
    with monkeypatch.context() as patch:
        patch.setattr(gym, "make", no_env)
        dataset = publish(folder, overwrite=True)
    assert dataset.spec.env_spec == env_spec(json.loads((folder / "plan.json").read_text())["scenario"])
    assert dataset.recover_environment().spec.id == "DataMix-v0"


def test_a_publish_cut_short_is_published_again_not_refused(staged, minari_root):
    """A killed publish leaves a folder without metadata, or a dataset without dmix's metadata (written last): a
    resumed collection publishes it again from the staged episodes instead of stopping at it."""
    import minari
    from minari.storage import get_dataset_path

    _, folder = staged
    ident = publish(folder, overwrite=True).spec.dataset_id
    data = Path(get_dataset_path(ident)) / "data"
    metadata = json.loads((data / "metadata.json").read_text())
    del metadata["dmix"]  # killed before the last metadata update
    (data / "metadata.json").write_text(json.dumps(metadata))
    with pytest.warns(UserWarning, match="never finished"):
        assert publish(folder).total_episodes == 4
    assert "dmix" in minari.load_dataset(ident).storage.metadata
    (data / "metadata.json").unlink()  # killed before Minari wrote its metadata
    with pytest.warns(UserWarning, match="never finished"):
        assert publish(folder).total_episodes == 4
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        assert publish(folder).total_episodes == 4  # a finished one is kept, with no warning


def test_minari_load_in_fresh_process(staged, minari_root):
    _, folder = staged
    dataset = publish(folder, overwrite=True)
    code = (f"import minari; d = minari.load_dataset({dataset.spec.dataset_id!r}); "
            "print(d.total_episodes, d.storage.metadata['dmix']['fields'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "MINARI_DATASETS_PATH": str(minari_root)})
    assert out.stdout.split()[0] == "4" and "math" in out.stdout


def test_dataset_of_another_scenario_is_refused(staged, minari_root):
    scenario, folder = staged
    dataset = publish(folder, overwrite=True)
    check_scenario(dataset, scenario)
    with pytest.raises(ValueError, match="train.lr"):
        check_scenario(dataset, override(scenario, lr=1e-4))


def test_plan_of_another_scenario_is_refused(staged, tiny_data):
    scenario, _ = staged
    with pytest.raises(CollectionError, match="another scenario"):
        collect(tiny_scenario(tiny_data, lr=1e-4), name="roundtrip", total=4, qualities=QUALITIES, workers=1,
                data_dir=str(tiny_data), progress=False)


def test_corrupt_staged_episode_is_named(staged, minari_root, tiny_data, tmp_path):
    scenario, folder = staged
    broken = tmp_path / "broken"
    broken.mkdir()
    for file in folder.iterdir():
        (broken / file.name).write_bytes(file.read_bytes())
    (broken / "episode-000001.npz").write_bytes(b"not a zip")
    with pytest.raises(CollectionError, match="episode-000001.npz"):
        publish(broken, name="broken")
    (broken / "episode-000001.npz").unlink()
    with pytest.raises(CollectionError, match="3 of 4 planned"):
        publish(broken, name="broken")
    assert publish(broken, name="broken", partial=True).total_episodes == 3


@pytest.mark.parametrize("vector", [0, 2])
def test_killed_collection_resumes(tiny_data, tmp_path, vector):
    scenario = tiny_scenario(tiny_data, max_steps=3)
    cache = os.environ["DMIX_CACHE_DIR"]
    name = f"resume-{vector}"
    folder = staging_dir(scenario.name, name, cache)
    script = (
        "from datasets_builder.collection import collect\nfrom dmix_gym.scenario import Scenario\nimport json, sys\n"
        "if __name__ == '__main__':\n"
        f"    collect(Scenario.from_dict(json.loads(sys.argv[1])), name={name!r}, total=8, qualities=(1,), workers=1,"
        f" data_dir={str(tiny_data)!r}, progress=False, vector={vector})\n"
    )
    path = tmp_path / "run_collect.py"
    path.write_text(script)
    process = subprocess.Popen([sys.executable, str(path), scenario.to_json()], cwd=Path(__file__).parents[1],
                               env={**os.environ, "DMIX_CACHE_DIR": cache})
    deadline = time.time() + 300
    while time.time() < deadline and len(finished(folder)) < 2 and process.poll() is None:
        time.sleep(0.02)
    # Kill the driver and its worker process together: a crash of the whole collection.
    subprocess.run(["pkill", "-9", "-P", str(process.pid)])
    process.kill()
    process.wait()
    before = {p.name: p.stat().st_mtime_ns for p in folder.glob("episode-*.npz")}
    assert 2 <= len(before) < 8
    collect(scenario, name=name, total=8, qualities=(1,), workers=1, data_dir=str(tiny_data), progress=False,
            vector=vector)
    after = {p.name: p.stat().st_mtime_ns for p in folder.glob("episode-*.npz")}
    assert len(after) == 8 and finished(folder) == set(range(8))
    assert all(after[name] == mtime for name, mtime in before.items())  # finished episodes were not redone
    assert not list(folder.glob(".episode-*"))  # no half-written files left


def test_ray_backend_finishes_a_collection_like_local_workers(staged, tiny_data):
    """A local Ray cluster runs the episodes not yet staged, and they equal the ones local workers staged."""
    pytest.importorskip("ray")
    import shutil

    scenario, local = staged
    folder = staging_dir(scenario.name, "ray")
    folder.mkdir(parents=True)
    for name in ("plan.json", "episode-000000.npz", "episode-000001.npz"):  # a collection stopped after 2 episodes
        shutil.copy2(local / name, folder / name)
    before = {p.name: p.stat().st_mtime_ns for p in folder.glob("episode-*.npz")}
    collect(scenario, name="ray", total=4, qualities=QUALITIES, workers=2, backend="ray", data_dir=str(tiny_data),
            progress=False)
    assert finished(folder) == {0, 1, 2, 3}
    assert all(p.stat().st_mtime_ns == before[p.name] for p in folder.glob("episode-*.npz") if p.name in before)
    for index in (2, 3):
        with np.load(local / f"episode-00000{index}.npz") as want, np.load(folder / f"episode-00000{index}.npz") as got:
            assert set(got.files) == set(want.files)
            for key in (k for k in want.files if not k.endswith("_seconds")):  # timings differ, the rest must not
                assert np.allclose(got[key], want[key], rtol=1e-4, atol=1e-5, equal_nan=True), key


def test_vector_collection_finishes_a_collection_like_local_workers(staged, tiny_data):
    """Two proxies trained at once on a vector env stage the episodes one proxy at a time staged (a short last chunk
    included)."""
    import shutil

    scenario, local = staged
    folder = staging_dir(scenario.name, "vector")
    folder.mkdir(parents=True)
    for name in ("plan.json", "episode-000000.npz"):  # a collection stopped after 1 episode: chunks of 2, then 1
        shutil.copy2(local / name, folder / name)
    collect(scenario, name="vector", total=4, qualities=QUALITIES, workers=1, data_dir=str(tiny_data), progress=False,
            vector=2)
    assert finished(folder) == {0, 1, 2, 3}
    for index in (1, 2, 3):
        with np.load(local / f"episode-00000{index}.npz") as want, np.load(folder / f"episode-00000{index}.npz") as got:
            assert set(got.files) == set(want.files)
            for key in (k for k in want.files if not k.endswith("_seconds")):
                assert np.allclose(got[key], want[key], rtol=1e-4, atol=1e-4, equal_nan=True), key


def test_staging_follows_dmix_staging_dir(monkeypatch, tmp_path):
    """A long job keeps its staged episodes where $DMIX_STAGING_DIR says (a repository, to survive a machine move)."""
    monkeypatch.setenv("DMIX_STAGING_DIR", str(tmp_path / "kept"))
    assert staging_dir("some-scenario", "runs") == (tmp_path / "kept" / f"some-scenario-runs-v{DATASET_VERSION}").resolve()


def test_the_shipped_collection_plans_the_current_scenario():
    """The benchmark's dataset ships as its plan and episodes: a change to the scenario or preset must be deliberate."""
    from datasets_builder.collection import SHIPPED, Plan
    from dmix_gym.scenario import canonical_scenario, make_scenario

    scenario = make_scenario("general-math", "cpu")
    folder = staging_dir(scenario.name, "trajectories")
    assert folder.parent == SHIPPED
    plan = Plan.from_json(json.loads((folder / "plan.json").read_text()))
    assert canonical_scenario(plan.scenario) == json.loads(scenario.to_json())
    assert len(plan.episodes) == 128 and sorted({e.quality for e in plan.episodes}) == [1, 100, 1000, 10_000]
    assert all(e.actions.shape == (scenario.train.max_steps, 16) for e in plan.episodes)


def test_a_noisy_schedule_slice_follows_the_algorithm_1_episodes_and_trains_beside_them(staged, tiny_data, minari_root):
    from agents.offline_data import dataset_ids, load_offline
    from baselines.static import schedule_shares
    from datasets_builder.trajectories import SCHEDULE_QUALITY, NoisySchedule

    scenario, first = staged
    steps = scenario.train.max_steps
    schedule = NoisySchedule(schedule_shares((0.6, 0.1), steps), episodes=2, noise=0.3)
    folder = collect(scenario, name="slice", total=2, qualities=QUALITIES, workers=1, data_dir=str(tiny_data),
                     progress=False, schedule=schedule)
    plan = json.loads((folder / "plan.json").read_text())
    assert [e["quality"] for e in plan["episodes"]] == [1, 50, SCHEDULE_QUALITY, SCHEDULE_QUALITY]
    space = dmix_metadata(publish(first, overwrite=True))
    p0, p_star = np.asarray(space["p0"]), np.asarray(space["p_star"])
    target = np.isin(np.asarray(space["field_of"]), [space["fields"].index(f) for f in space["target_fields"]])
    for planned in plan["episodes"][2:]:
        actions = np.asarray(planned["actions"], np.float64)
        shares = actions[:, target].sum(1)
        assert np.allclose(actions, (1 - shares[:, None]) * p0 + shares[:, None] * p_star, atol=1e-6)  # on the p0-p* line
        assert not np.allclose(shares, schedule.shares, atol=1e-3)  # noisy
    with pytest.raises(CollectionError, match="the schedule has 2 shares"):
        collect(scenario, name="slice-short", total=2, qualities=QUALITIES, workers=1, data_dir=str(tiny_data),
                progress=False, schedule=NoisySchedule((0.5, 0.5), 1))
    main, extra = publish(first, overwrite=True), publish(folder, overwrite=True)
    alone, both = load_offline(main, window=2), load_offline([main, extra], window=2)
    assert len(both) == len(alone) + sum(len(e.actions) for e in extra.iterate_episodes())
    assert len(np.unique(both.episode)) == main.total_episodes + extra.total_episodes
    assert both.dataset_id == f"{main.spec.dataset_id}+{extra.spec.dataset_id}"
    assert dataset_ids(both.dataset_id) == [main.spec.dataset_id, extra.spec.dataset_id]
    assert np.array_equal(both.feedback_std, alone.feedback_std)  # the first dataset's standardisation
