"""Leaderboard: score arithmetic, seed disjointness, references, idempotent and failing submissions, resume."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest

from datasets_builder.collection import collect
from datasets_builder.publish import publish
from datasets_builder.trajectories import plan_episodes
from dmix_gym.policy import History, Policy
from leaderboard import protocol as protocol_module
from leaderboard.protocol import EVAL_SEED_BASE, PROTOCOLS, VALIDATION_SEED_BASE, Objective, Protocol, Task
from leaderboard.scores import mean_std, normalised_score
from leaderboard.store import Store
from leaderboard.submit import check_build, compute_references, submit
from leaderboard.table import ranked
from tests.helpers import tiny_scenario, tiny_spec


class NegativeMixture(Policy):
    """A broken submission: its second action has a negative weight."""

    name = "broken"

    def act(self, history: History) -> np.ndarray:
        p = np.full(self.info.num_domains, 1.0 / self.info.num_domains)
        if len(history) > 1:
            p[0], p[1] = -0.5, p[1] + 0.5 + p[0]
        return p


def broken_policy() -> Policy:
    return NegativeMixture()


def test_normalised_score_arithmetic():
    assert normalised_score(-2.0, -2.0, 1.0) == 0.0
    assert normalised_score(1.0, -2.0, 1.0) == 100.0
    assert normalised_score(-0.5, -2.0, 1.0) == pytest.approx(50.0)
    assert normalised_score(2.5, -2.0, 1.0) == pytest.approx(150.0)
    with pytest.raises(ValueError, match="ref_max"):
        normalised_score(0.0, 1.0, 1.0)
    balanced = Objective((-7.0, -4.0), (0.5, 2.0))
    assert balanced.score([-6.0, -2.0]) == pytest.approx((2.0 + 1.0) / 2)
    assert Objective((-7.0, -4.0), (0.5, 2.0), (0.75, 0.25)).score([-6.0, -2.0]) == pytest.approx(0.75 * 2.0 + 0.25 * 1.0)
    with pytest.raises(ValueError, match="2 fields"):
        balanced.score([-6.0])
    with pytest.raises(ValueError, match="positive std"):
        Objective((-7.0, -4.0), (0.5, 0.0))
    with pytest.raises(ValueError, match="summing to 1"):
        Objective((-7.0, -4.0), (0.5, 2.0), (0.5, 0.6))
    assert mean_std([1.0, 3.0]) == (2.0, 1.0)


def test_one_off_compute_counts_a_shared_cost_once():
    from leaderboard.table import Row, compute_cell

    agent = {"algo": "cql", "train_seconds": 826.0, "device": "CPU (2 threads)"}
    assert compute_cell(Row("a", "done", None, compute={"t1": agent, "t2": agent})) == "training 14 min on CPU (2 threads)"
    # A fitted baseline's entries grow as tasks add fits; a fit shared by two tasks is in both.
    fits = {"t1": {"proxy_runs": 64, "proxy_seconds": 1800.0}, "t2": {"proxy_runs": 64, "proxy_seconds": 1800.0},
            "t3": {"proxy_runs": 128, "proxy_seconds": 9000.0}}
    assert compute_cell(Row("r", "done", None, compute=fits)) == "128 proxy runs, 2.5 h"
    assert compute_cell(Row("o", "done", None, compute={"t1": {}, "t2": {}})) == "none"
    assert compute_cell(Row("x", "running", None)) == "–"


@pytest.mark.parametrize("version", sorted(PROTOCOLS))
def test_protocol_seeds_are_disjoint_from_collection_seeds(version):
    protocol = PROTOCOLS[version]
    eval_seeds = [s for t in protocol.tasks for s in t.seeds]
    assert len(eval_seeds) == len(set(eval_seeds))  # no two tasks share an episode seed
    low, high = protocol.collection_seeds
    assert all(not low <= s < high for s in eval_seeds) and min(eval_seeds) >= EVAL_SEED_BASE
    assert max(eval_seeds) < VALIDATION_SEED_BASE and high <= VALIDATION_SEED_BASE  # model selection sees neither
    # The env seeds collection actually uses (plans of seed 0..9, 1000 episodes each) lie in the collection range.
    for plan_seed in range(10):
        planned = plan_episodes(np.full(4, 0.25), np.full(4, 0.25), 2, 1000, (1,), seed=plan_seed)
        assert all(low <= e.seed < high for e in planned)
    tasks = {"in-distribution", "unseen-model", "unseen-source", "source-space"}
    tasks |= set() if "-v0" in version else {"unseen-target"}
    assert {t.name for t in protocol.tasks} == (tasks | {"scarce-target"} if "-v2" in version or "-v3" in version else tasks)


def test_every_command_defaults_to_the_default_protocol():
    """Making a protocol the default is one line (DEFAULT_PROTOCOL): no command keeps its own copy of the name."""
    import inspect

    from dmix import cli

    commands = [c.callback for c in cli.leaderboard_app.registered_commands + cli.app.registered_commands]
    defaults = {c.__name__: inspect.signature(c).parameters["protocol"].default
                for c in commands if "protocol" in inspect.signature(c).parameters}
    assert defaults.pop("run") == protocol_module.DEFAULT_SMOKE_PROTOCOL  # `dmix run` ranks at the smoke preset
    assert len(defaults) >= 10 and set(defaults.values()) == {protocol_module.DEFAULT_PROTOCOL}


@pytest.mark.parametrize("frozen", ["dmix-bench-v0", "dmix-bench-v1", "dmix-bench-smoke-v1"])
def test_v2_is_the_default_and_older_versions_stay_readable_but_take_no_submissions(tmp_path, frozen):
    from leaderboard.submit import submit

    assert protocol_module.DEFAULT_PROTOCOL == "dmix-bench-v2"
    assert all(len(t.seeds) >= 5 for t in PROTOCOLS["dmix-bench-v2"].tasks)
    with pytest.raises(ValueError, match=f"{frozen} is frozen"):
        submit("baseline:naive", "late", frozen, tmp_path / "lb.sqlite")


def test_iqm_and_its_stratified_bootstrap_interval():
    from leaderboard.scores import iqm, stratified_bootstrap_ci

    assert iqm([1.0, 2.0, 3.0, 4.0, 100.0]) == pytest.approx(3.0)  # the outlier is trimmed
    assert iqm(range(8)) == pytest.approx(3.5)
    runs = [[10.0, 12.0, 11.0, 50.0, 9.0], [20.0, 21.0, 19.0, 22.0, 18.0]]
    low, high = stratified_bootstrap_ci(runs, reps=500, seed=0)
    assert low <= iqm(np.concatenate(runs)) <= high and high - low > 0
    assert stratified_bootstrap_ci(runs, reps=500, seed=0) == (low, high)  # seeded
    rows = np.random.default_rng(0).normal(size=(6, 9))
    assert iqm(rows, axis=1) == pytest.approx([iqm(r) for r in rows])  # every resample reduced in one call
    low, high = stratified_bootstrap_ci(runs, statistic=np.mean, reps=500, seed=0)  # any reduction with an axis
    assert low <= np.mean(np.concatenate(runs)) <= high


@pytest.fixture(scope="module")
def tiny_protocol(tiny_data, tmp_path_factory):
    """A protocol over the tiny corpus, its statistics from a tiny Minari dataset collected through the env."""
    os.environ["DMIX_CACHE_DIR"] = str(tmp_path_factory.getbasetemp() / "cache")
    minari_dir = str(tmp_path_factory.mktemp("minari-lb"))
    previous, os.environ["MINARI_DATASETS_PATH"] = os.environ.get("MINARI_DATASETS_PATH"), minari_dir
    scenario = tiny_scenario(tiny_data)
    folder = collect(scenario, name="lb", total=2, qualities=(1,), workers=1, data_dir=str(tiny_data), progress=False)
    dataset = publish(folder, overwrite=True)
    other_corpus = dataclasses.replace(scenario, data=tiny_spec(tiny_data, name="tiny-other", domains="source"))
    version = "test-tiny-v0"
    protocol = Protocol(version, dataset.spec.dataset_id, (0, 100_000), (
        Task("in-distribution", scenario.to_json(), "smoke", (EVAL_SEED_BASE, EVAL_SEED_BASE + 1)),
        Task("unseen-model", scenario.to_json(), "smoke", (EVAL_SEED_BASE + 100,), (("hidden_size", 32), ("num_heads", 2))),
        Task("unseen-source", other_corpus.to_json(), "smoke", (EVAL_SEED_BASE + 200,)),
        Task("source-space", scenario.to_json(), "smoke", (EVAL_SEED_BASE + 300,), space="source"),
    ), reference_grid=(0.0, 1.0), random_episodes=1)
    PROTOCOLS[version] = protocol
    yield protocol
    del PROTOCOLS[version]
    if previous is None:
        os.environ.pop("MINARI_DATASETS_PATH")
    else:
        os.environ["MINARI_DATASETS_PATH"] = previous


def run(spec, name, protocol, tiny_data, db, **kwargs):
    return submit(spec, name, protocol.version, db, data_dir=str(tiny_data), progress=False, **kwargs)


def test_references_and_ranked_table(tiny_protocol, tiny_data, tmp_path):
    store = Store(tmp_path / "lb.sqlite")
    compute_references(tiny_protocol, store, data_dir=str(tiny_data), progress=False)
    for task in tiny_protocol.tasks:
        ref = store.reference(tiny_protocol.version, task.name)
        assert ref["ref_max"] == max(ref["grid"].values()) and len(ref["random"]) == 1
    assert run("baseline:uniform", "uniform", tiny_protocol, tiny_data, store.path) == "done"
    rows = ranked(store, tiny_protocol.version)
    assert [r.name for r in rows] == ["uniform"]
    assert set(rows[0].tasks) == {t.name for t in tiny_protocol.tasks}
    assert rows[0].tasks["in-distribution"]["n"] == 2
    normalised = []
    for task in tiny_protocol.tasks:  # a task is normalised exactly when its references allow it
        ref, stats = store.reference(tiny_protocol.version, task.name), rows[0].tasks[task.name]
        assert ("normalised" in stats) == (ref["ref_max"] > ref["ref_min"])
        if "normalised" in stats:
            expected = normalised_score(stats["balanced"][0], ref["ref_min"], ref["ref_max"])
            assert stats["normalised"][0] == pytest.approx(expected)
            normalised.append(stats["normalised"][0])
    assert rows[0].overall == pytest.approx(np.mean(normalised)) if normalised else np.isnan(rows[0].overall)


def test_references_resume_from_stored_episodes(tiny_protocol, tiny_data, tmp_path, monkeypatch):
    import sqlite3

    from leaderboard import episodes as episodes_module

    store = Store(tmp_path / "lb.sqlite")
    compute_references(tiny_protocol, store, data_dir=str(tiny_data), progress=False, workers=2)
    first = {t.name: store.reference(tiny_protocol.version, t.name) for t in tiny_protocol.tasks}
    with sqlite3.connect(store.path) as db:  # as if the run died after its last episode, before the summary row
        db.execute("DELETE FROM refs")
    monkeypatch.setattr(episodes_module, "run_episode", lambda *a, **k: pytest.fail("a stored reference episode re-ran"))
    compute_references(tiny_protocol, store, data_dir=str(tiny_data), progress=False)
    assert {t.name: store.reference(tiny_protocol.version, t.name) for t in tiny_protocol.tasks} == first


def test_parallel_submission_matches_sequential(tiny_protocol, tiny_data, tmp_path):
    db = tmp_path / "lb.sqlite"
    store = Store(db)
    assert run("baseline:dbl", "one", tiny_protocol, tiny_data, db) == "done"
    assert run("baseline:dbl", "two", tiny_protocol, tiny_data, db, workers=2) == "done"
    def scores(name):
        return {(e["task"], e["seed"]): e["balanced"] for e in store.episodes(tiny_protocol.version, name)}
    assert scores("one") == pytest.approx(scores("two"))


def test_parallel_episodes_build_each_tasks_base_proxy_here_once_before_the_workers(tiny_protocol, tiny_data, monkeypatch):
    """Pool workers that each met a missing base proxy pre-trained the same one at the same time (unseen-scale's search:
    two copies of its 10x base); this process builds it first and the workers load it."""
    from leaderboard.episodes import run_episodes
    from leaderboard.official import ranking_objective

    task = dataclasses.replace(tiny_protocol.tasks[0], overrides=(("base_tokens", 12_288),))  # a base no test built yet
    built = []
    make_env = Task.make_env
    monkeypatch.setattr(Task, "make_env", lambda self, *a, **k: built.append(self.name) or make_env(self, *a, **k))
    jobs = [("baseline:uniform", task, seed) for seed in task.seeds]
    records = dict(run_episodes(jobs, ranking_objective(tiny_protocol), {}, 2, str(tiny_data)))
    assert built == [task.name] and sorted(records) == list(range(len(jobs)))
    here = dataclasses.replace(task, overrides=(("base_tokens", 14_336),))  # in this process: that env, not another
    built.clear()
    records = dict(run_episodes([("baseline:uniform", here, seed) for seed in here.seeds], ranking_objective(tiny_protocol),
                                {}, 1, str(tiny_data)))
    assert built == [here.name] and sorted(records) == list(range(len(here.seeds)))


def test_vector_submission_matches_one_episode_at_a_time(tiny_protocol, tiny_data, tmp_path):
    """K episodes of a task trained together (short chunks padded, the per-field task wrapped) score as run alone."""
    db = tmp_path / "lb.sqlite"
    store = Store(db)
    assert run("baseline:dbl", "alone", tiny_protocol, tiny_data, db, vector=0) == "done"
    assert run("baseline:dbl", "batched", tiny_protocol, tiny_data, db, vector=2) == "done"
    def scores(name):
        return {(e["task"], e["seed"]): e["balanced"] for e in store.episodes(tiny_protocol.version, name)}
    assert scores("batched").keys() == scores("alone").keys()
    assert scores("batched") == pytest.approx(scores("alone"), abs=1e-3)  # batched float rounding (test_vector.py)


def test_resubmission_replaces_and_never_duplicates(tiny_protocol, tiny_data, tmp_path):
    db = tmp_path / "lb.sqlite"
    store = Store(db)
    assert run("baseline:uniform", "mine", tiny_protocol, tiny_data, db) == "done"
    first = store.episodes(tiny_protocol.version, "mine")
    assert len(first) == 5
    assert run("baseline:uniform", "mine", tiny_protocol, tiny_data, db) == "done"  # same policy: nothing re-run
    assert store.episodes(tiny_protocol.version, "mine") == first
    assert run("baseline:naive", "mine", tiny_protocol, tiny_data, db) == "done"  # another policy: replaces
    replaced = store.episodes(tiny_protocol.version, "mine")
    assert len(replaced) == 5
    for e in replaced:  # every stored action is now Naive's: nothing on source-field domains
        source = [i for i, d in enumerate(e["trace"]["domains"]) if d.startswith("general/")]
        assert np.all(np.asarray(e["trace"]["mixtures"])[1:, source] == 0)
    assert [s["policy"] for s in store.submissions(tiny_protocol.version)] == ["baseline:naive"]


def test_failing_submissions_are_recorded_without_damage(tiny_protocol, tiny_data, tmp_path):
    db = tmp_path / "lb.sqlite"
    store = Store(db)
    assert run("baseline:start-state", "good", tiny_protocol, tiny_data, db) == "done"
    before = store.episodes(tiny_protocol.version, "good")
    assert run("no_such_package.module:factory", "ghost", tiny_protocol, tiny_data, db) == "failed"
    assert run("tests.test_leaderboard:broken_policy", "broken", tiny_protocol, tiny_data, db) == "failed"
    subs = {s["name"]: s for s in store.submissions(tiny_protocol.version)}
    assert subs["ghost"]["status"] == "failed" and "did not load" in subs["ghost"]["reason"]
    assert subs["broken"]["status"] == "failed" and "invalid mixture" in subs["broken"]["reason"]
    assert "task in-distribution" in subs["broken"]["reason"]
    assert subs["good"]["status"] == "done" and store.episodes(tiny_protocol.version, "good") == before
    names = [r.name for r in ranked(store, tiny_protocol.version)]
    assert names[0] == "good" and set(names[1:]) == {"ghost", "broken"}


def test_a_crashed_submission_resumes(tiny_protocol, tiny_data, tmp_path, monkeypatch):
    db = tmp_path / "lb.sqlite"
    store = Store(db)
    # A run that died after one episode: the submission is 'running' with that episode stored.
    from leaderboard.registry import resolve_policy

    done = store.begin("resumed", tiny_protocol.version, "baseline:uniform", resolve_policy("baseline:uniform")[1])
    assert done == set()
    store.add_episode("resumed", tiny_protocol.version, "in-distribution", EVAL_SEED_BASE, [-1.0, -1.0], 0.123, 0.0, 0, 9.87,
                      {"marker": True})
    assert run("baseline:uniform", "resumed", tiny_protocol, tiny_data, db) == "done"
    episodes = store.episodes(tiny_protocol.version, "resumed")
    assert len(episodes) == 5
    kept = [e for e in episodes if e["task"] == "in-distribution" and e["seed"] == EVAL_SEED_BASE][0]
    assert kept["trace"] == {"marker": True} and kept["seconds"] == 9.87  # not re-run
    # Re-running the finished row builds no env (no data, no base proxy) and keeps its compute.
    compute = store.submissions(tiny_protocol.version)[0]["compute"]
    monkeypatch.setattr(protocol_module.Task, "make_env", lambda *a, **k: pytest.fail("a finished row built an env"))
    assert run("baseline:uniform", "resumed", tiny_protocol, tiny_data, db) == "done"
    assert compute is not None and store.submissions(tiny_protocol.version)[0]["compute"] == compute


def test_a_machine_whose_build_starts_elsewhere_is_refused(tiny_protocol, tiny_data, tmp_path):
    import json
    import sqlite3

    db = tmp_path / "lb.sqlite"
    store = Store(db)
    assert run("baseline:uniform", "first", tiny_protocol, tiny_data, db) == "done"
    assert run("baseline:start-state", "same-build", tiny_protocol, tiny_data, db) == "done"
    # As if "first" had run on a machine whose data or base proxy came out otherwise: its episodes start elsewhere.
    with sqlite3.connect(db) as con:
        for task, seed, trace in con.execute("SELECT task, seed, trace FROM episodes WHERE name='first'").fetchall():
            trace = json.loads(trace)
            trace["feedback"][0] = [f + 0.05 for f in trace["feedback"][0]]
            con.execute("UPDATE episodes SET trace=? WHERE name='first' AND task=? AND seed=?", (json.dumps(trace), task, seed))
    assert run("baseline:naive", "later", tiny_protocol, tiny_data, db) == "failed"
    reason = {s["name"]: s for s in store.submissions(tiny_protocol.version)}["later"]["reason"]
    assert "BuildMismatch" in reason and "not comparable" in reason
    assert store.episodes(tiny_protocol.version, "later") == []  # nothing of it mixed into the table
    # check_build tells it before any episode: this machine's start beside the first stored row's.
    rows = check_build(tiny_protocol, store, data_dir=str(tiny_data), progress=False)
    assert [task for task, *_ in rows] == [t.name for t in tiny_protocol.tasks]
    assert all(stored is not None and np.allclose(here + 0.05, stored, atol=1e-3) for _, here, stored, _ in rows)
    assert all(same is False for *_, same in rows)  # the tampered row's start is not this machine's


def test_unknown_protocol_is_named():
    with pytest.raises(ValueError, match="dmix-bench-v0"):
        protocol_module.get_protocol("bench-v9")


def test_the_scale_caption_names_what_100_is_in_each_protocol():
    from leaderboard.table import scale_caption

    assert "schedule oracle" in scale_caption("dmix-bench-v2")  # 100 is the better searched reference
    assert scale_caption("dmix-bench-v1").endswith("100 = best static target share")  # v1's coarse grid


def test_report_is_written_with_table_and_plots(tiny_protocol, tiny_data, tmp_path):
    from leaderboard.report import write_report

    db = tmp_path / "lb.sqlite"
    store = Store(db)
    compute_references(tiny_protocol, store, data_dir=str(tiny_data), progress=False)
    assert run("baseline:naive", "naive", tiny_protocol, tiny_data, db) == "done"
    assert run("no_such_package:factory", "ghost", tiny_protocol, tiny_data, db) == "failed"
    page = write_report(store, tiny_protocol.version, tmp_path / "report")
    text = page.read_text()
    assert "<table>" in text and "naive" in text and "failed: policy did not load" in text
    for image in ("scores.png", "mixtures.png", "feedback.png"):
        assert f'src="{image}"' in text
        assert (tmp_path / "report" / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (tmp_path / "report" / "table.md").read_text().splitlines()  # the README's form of the table
    assert table[0].startswith("| # | submission | overall | IQM [95% CI] |") and len(table) == 4
    assert table[2].startswith("| 1 | naive |") and "failed: policy did not load" in table[3]

    from typer.testing import CliRunner

    from dmix.cli import app

    cli = CliRunner()  # re-submitting reuses the stored episodes: this only checks what the commands print
    submitted = cli.invoke(app, ["leaderboard", "submit", "--policy", "baseline:naive", "--name", "naive",
                                 "--protocol", tiny_protocol.version, "--db", str(db), "--data-dir", str(tiny_data)])
    assert submitted.exit_code == 0 and "normalised score" in submitted.output and "| # |" not in submitted.output
    shown = cli.invoke(app, ["leaderboard", "show", "--protocol", tiny_protocol.version, "--db", str(db), "--markdown"])
    assert shown.exit_code == 0 and shown.output.splitlines() == table


def test_official_results_ship_and_a_submission_runs_only_its_own_episodes(tiny_protocol, tiny_data, tmp_path,
                                                                            monkeypatch):
    from leaderboard import official
    from leaderboard.official import ranking_objective

    made = Store(tmp_path / "made.sqlite")
    compute_references(tiny_protocol, made, data_dir=str(tiny_data), progress=False)
    assert run("baseline:uniform", "uniform", tiny_protocol, tiny_data, made.path) == "done"
    monkeypatch.setattr(official, "OFFICIAL", tmp_path / "official")
    objective = ranking_objective(tiny_protocol)
    path = official.export_official(made, tiny_protocol, objective.mean, objective.std)
    assert path.parent == tmp_path / "official"

    fresh = tmp_path / "fresh.sqlite"
    assert official.install_official(Store(fresh), tiny_protocol.version) == ["uniform"]
    assert official.install_official(Store(fresh), tiny_protocol.version) == []  # taken in once
    compute_references(tiny_protocol, Store(fresh), data_dir=str(tiny_data), progress=False)
    for task in tiny_protocol.tasks:  # the shipped references are used: no reference episode ran here
        assert Store(fresh).reference_episodes(tiny_protocol.version, task.name) == {}
    assert run("baseline:uniform", "uniform-again", tiny_protocol, tiny_data, fresh) == "done"
    assert {r.name for r in ranked(Store(fresh), tiny_protocol.version)} == {"uniform", "uniform-again"}
    assert official.disagreements(Store(fresh), tiny_protocol.version) == []  # same policy, same seeds, same scores

    store = Store(fresh)
    episode = store.episodes(tiny_protocol.version, "uniform-again")[0]
    store.add_episode("uniform-again", tiny_protocol.version, episode["task"], episode["seed"], episode["final_feedback"],
                      episode["balanced"] + 10.0, episode["episode_return"], episode["source_tokens"], episode["seconds"],
                      episode["trace"])
    notes = official.disagreements(store, tiny_protocol.version)
    assert len(notes) == 1 and "uniform-again" in notes[0] and episode["task"] in notes[0]


def test_model_selection_scores_candidates_on_validation_seeds_and_resumes(tiny_protocol, tiny_data, tmp_path, monkeypatch):
    from agents.agent import TransformerAgent
    from agents.networks import AgentConfig
    from agents.offline_data import load_offline
    from agents.offline_rl import snapshot_path
    from leaderboard import selection

    data = load_offline(tiny_protocol.dataset, window=4)
    config = AgentConfig(window=4, d_model=16, layers=1, heads=2, ffn=32)

    def save(path, seed, name):
        TransformerAgent.create(data.domain_space, data.feedback_mean, data.feedback_std, config, seed, name=name).save(path)

    with pytest.raises(FileNotFoundError, match="no trained agents"):
        selection.find_candidates(tmp_path)
    save(tmp_path / "sft.pt", 0, "sft")
    for steps, seed in ((250, 1), (500, 2), (750, 3)):
        save(snapshot_path(tmp_path, "cql", steps), seed, "cql")
    found = selection.find_candidates(tmp_path, every=500)
    assert list(found) == ["sft", "cql"] and list(found["cql"]) == ["cql@500", "cql@750"]  # every 500 steps, and the last

    result = selection.select_models(tmp_path, tiny_protocol.version, seeds=2, data_dir=str(tiny_data), progress=False)
    assert result["seeds"] == [VALIDATION_SEED_BASE, VALIDATION_SEED_BASE + 1]
    assert not set(result["seeds"]) & {s for t in tiny_protocol.tasks for s in t.seeds}
    assert {label: len(s["balanced"]) for label, s in result["scores"].items()} == {"sft": 2, "cql@500": 2, "cql@750": 2}
    means = {label: np.mean(list(s["balanced"].values())) for label, s in result["scores"].items()}
    assert result["chosen"]["cql"]["label"] == max(("cql@500", "cql@750"), key=means.get)
    assert result["chosen"]["sft"]["path"] == str(tmp_path / "sft.pt")

    def no_episodes(jobs, *args, **kwargs):
        raise AssertionError(f"re-ran {len(jobs)} episodes")

    monkeypatch.setattr(selection, "run_episodes", no_episodes)
    assert selection.select_models(tmp_path, tiny_protocol.version, seeds=2, data_dir=str(tiny_data), progress=False) == result
    # Fewer seeds reuse the stored episodes (none re-run) and choose on the first seed's alone.
    first = selection.select_models(tmp_path, tiny_protocol.version, seeds=1, data_dir=str(tiny_data), progress=False)
    key = str(VALIDATION_SEED_BASE)
    firsts = {label: s["balanced"][key] for label, s in result["scores"].items()}
    assert first["seeds"] == [VALIDATION_SEED_BASE] and first["scores"] == result["scores"]
    assert first["chosen"]["cql"]["label"] == max(("cql@500", "cql@750"), key=firsts.get)
    assert first["chosen"]["sft"]["balanced_mean"] == pytest.approx(firsts["sft"])
    assert selection.select_models(tmp_path, tiny_protocol.version, seeds=2, data_dir=str(tiny_data), progress=False) == result
    # Trained again to the same weights (another wall time, another temporary file): a new file, the same candidate.
    same = TransformerAgent.create(data.domain_space, data.feedback_mean, data.feedback_std, config, 2, name="cql")
    same.meta["train_seconds"] = 123.4
    before = snapshot_path(tmp_path, "cql", 500).read_bytes()
    same.save(snapshot_path(tmp_path, "cql", 500))
    assert snapshot_path(tmp_path, "cql", 500).read_bytes() != before
    assert selection.select_models(tmp_path, tiny_protocol.version, seeds=2, data_dir=str(tiny_data), progress=False) == result

    rerun = []

    def record(jobs, *args, **kwargs):
        rerun.extend(jobs)
        return ((i, {"balanced": 99.0}) for i in range(len(jobs)))

    save(snapshot_path(tmp_path, "cql", 750), 9, "cql")  # retrained: only this candidate is scored again
    monkeypatch.setattr(selection, "run_episodes", record)
    again = selection.select_models(tmp_path, tiny_protocol.version, seeds=2, data_dir=str(tiny_data), progress=False)
    assert [(Path(path).name, seed) for path, _, seed in rerun] == [("750.pt", s) for s in result["seeds"]]
    assert again["chosen"]["cql"]["label"] == "cql@750" and again["scores"]["sft"] == result["scores"]["sft"]

    # A second folder (another training setting) competes per algorithm; the first folder's scores are kept.
    other = tmp_path.parent / f"{tmp_path.name}-relative"
    save(snapshot_path(other, "cql", 500), 4, "cql")
    rerun.clear()
    both = selection.select_models([tmp_path, other], tiny_protocol.version, seeds=2, out=tmp_path / "selection.json",
                                   data_dir=str(tiny_data), progress=False)
    assert [Path(path).parent.parent.name for path, _, _ in rerun] == [other.name] * 2  # only the new candidate ran
    assert both["chosen"]["cql"]["label"] == "cql@750"  # tied at 99: the first folder's, the earlier candidate
    assert set(both["scores"]) == {"sft", "cql@500", "cql@750", f"{other.name}/cql@500"}
    with pytest.raises(selection.ConfigError, match="distinct names"):
        selection.find_all_candidates([tmp_path, tmp_path])

    # The chosen checkpoints ship as official:<protocol>/<algo>, loadable by name with the file's fingerprint.
    from leaderboard import official
    from leaderboard.registry import load_policy, resolve_policy

    monkeypatch.setattr(official, "OFFICIAL", tmp_path / "official")
    specs = official.ship_agents(again["chosen"], "test-tiny-v0")
    assert specs == {"sft": "official:test-tiny-v0/sft", "cql": "official:test-tiny-v0/cql"}
    assert load_policy(specs["cql"]).meta == TransformerAgent.load(snapshot_path(tmp_path, "cql", 750)).meta
    assert resolve_policy(specs["sft"])[1] == resolve_policy(str(tmp_path / "sft.pt"))[1]
    # Shipped again after a retrain to the same weights (a fresh machine): the shipped file, and its rows, stay.
    fingerprint = resolve_policy(specs["sft"])[1]
    same = TransformerAgent.create(data.domain_space, data.feedback_mean, data.feedback_std, config, 0, name="sft")
    same.meta["train_seconds"] = 99.0
    same.save(tmp_path / "sft.pt")
    assert official.ship_agents(again["chosen"], "test-tiny-v0") == specs and resolve_policy(specs["sft"])[1] == fingerprint
    save(tmp_path / "sft.pt", 5, "sft")  # other weights: shipped anew
    official.ship_agents(again["chosen"], "test-tiny-v0")
    assert resolve_policy(specs["sft"])[1] == resolve_policy(str(tmp_path / "sft.pt"))[1] != fingerprint
    with pytest.raises(ValueError, match="shipped: test-tiny-v0/cql, test-tiny-v0/sft"):
        load_policy("official:test-tiny-v0/iql")


def test_a_failed_retry_never_overwrites_a_finished_row(tiny_protocol, tiny_data, tmp_path):
    db = tmp_path / "lb.sqlite"
    assert run("baseline:start-state", "row", tiny_protocol, tiny_data, db) == "done"
    before = Store(db).episodes(tiny_protocol.version, "row")
    assert run("no_such_package.module:factory", "row", tiny_protocol, tiny_data, db) == "failed"
    row = {s["name"]: s for s in Store(db).submissions(tiny_protocol.version)}["row"]
    assert row["status"] == "done" and row["policy"] == "baseline:start-state"
    assert Store(db).episodes(tiny_protocol.version, "row") == before


def test_a_changed_builtin_baseline_has_another_fingerprint():
    from baselines.regmix import RegMixConfig
    from leaderboard.registry import builtin_fingerprint, resolve_policy

    policy, fingerprint = resolve_policy("baseline:regmix")
    assert fingerprint.startswith("builtin:baseline:regmix:") and resolve_policy("baseline:regmix")[1] == fingerprint
    policy.config = RegMixConfig(runs=8)
    assert builtin_fingerprint("baseline:regmix", policy) != fingerprint
    assert resolve_policy("baseline:uniform")[1] != resolve_policy("baseline:naive")[1]


def test_the_store_backs_up_consistently(tmp_path):
    store = Store(tmp_path / "live.sqlite")
    store.set_reference("p", "t", 0.1, 0.9, {"seeds": [1]})
    copy = Store(store.backup(tmp_path / "repo" / "p.sqlite"))
    assert copy.reference("p", "t") == store.reference("p", "t")
    assert not (tmp_path / "repo" / "p.sqlite.partial").exists()


def test_v2_tasks_reward_the_objective_and_the_search_baselines_order_mixtures_like_the_board():
    """One objective: a v2 task's env weights make eq. 6 the score's increment, and the quantity RegMix and Mixing
    laws fit and maximise (`dmix_gym.feedback.objective` with the env's weights) orders final feedback like the board."""
    from dmix_gym.feedback import objective

    protocol = PROTOCOLS["dmix-bench-v2"]
    rng = np.random.default_rng(0)
    for task in protocol.tasks:
        weights = task.make_scenario().weights()
        assert np.allclose(weights, protocol.objective.reward_weights())
        finals = np.asarray(protocol.objective.mean) + rng.normal(0, 1, (50, 2)) * np.asarray(protocol.objective.std)
        fitted = objective(finals, weights)
        board = np.array([protocol.objective.score(f) for f in finals])
        assert np.allclose(fitted - fitted[0], board - board[0])  # the same up to a constant, so the same order
    # eq. 6's equal weights (what v1's RegMix fitted) order them otherwise: forgetting weighs 7.7x less there
    a, b = np.array([-4.95, -4.0]), np.array([-4.90, -4.3])
    assert (protocol.objective.score(a) > protocol.objective.score(b)) != (objective(a, (0.5, 0.5)) > objective(b, (0.5, 0.5)))


def test_v3_references_search_domain_splits_and_resume(tiny_protocol, tiny_data, tmp_path):
    """The static oracle goes on within the fields from the line's best share; ref_max is the best confirmed of the
    line, the domain mixture and the schedule; a second run re-runs nothing."""
    from baselines.domains import parse_domain_weights
    from leaderboard.protocol import SearchConfig
    from leaderboard.submit import reference_log

    objective = Objective((-5.0, -5.0), (0.2, 1.0))
    task = dataclasses.replace(tiny_protocol.tasks[0], objective=objective)
    search = SearchConfig(coarse=(0.0, 0.5, 1.0), refine=(0.25,), tolerance=100.0, search_seeds=1, confirm_seeds=2,
                          random_episodes=2, domains=True, domain_pairs=2, share_multiples=(0.5,), model_rounds=1,
                          model_proposals=2)
    protocol = dataclasses.replace(tiny_protocol, version="test-tiny-v3", tasks=(task,), objective=objective, search=search,
                                   schedule_tasks=())
    PROTOCOLS[protocol.version] = protocol
    try:
        store = Store(tmp_path / "lb.sqlite")
        compute_references(protocol, store, data_dir=str(tiny_data), progress=False)
        ref = store.reference(protocol.version, task.name)
        found = ref["domain_search"]
        stages = [t["stage"] for t in found["trail"]]
        assert stages == ["corners", "pairs", "share", "model-1"]
        episodes = [t["episodes"] for t in found["trail"]]
        assert episodes == sorted(episodes) and found["candidates"] > 4  # every stage ran new candidates
        best = [t["best_mean"] for t in found["trail"]]
        assert best == sorted(best) and found["mean"] == best[-1] >= found["line_mean"]  # never worse than the line
        assert sum(parse_domain_weights(found["spec"]).values()) == pytest.approx(1.0, abs=1e-3)
        assert ref["ref_max"] == max(ref["static"]["mean"], ref["domain"]["mean"])
        assert ref["domain_gain"]["mean"] == pytest.approx(ref["domain"]["mean"] - ref["static"]["mean"])
        assert ref["domain"]["seeds"] == ref["static"]["seeds"]  # paired, on the confirmation seeds
        rows = {r.name: r for r in ranked(store, protocol.version)}
        assert rows["Domain oracle (reference)"].status == "reference"
        log = reference_log(store, protocol, task)
        assert all(len(json.loads(line)["mixture"]) > 2 for line in log.read_text().splitlines())
        lines = log.read_text().splitlines()
        with store._connect() as db:
            db.execute("DELETE FROM refs")
        compute_references(protocol, store, data_dir=str(tiny_data), progress=False)
        assert log.read_text().splitlines() == lines
        assert store.reference(protocol.version, task.name)["ref_max"] == ref["ref_max"]
    finally:
        PROTOCOLS.pop(protocol.version)


def test_v2_references_come_from_the_search_and_resume(tiny_protocol, tiny_data, tmp_path):
    from leaderboard.protocol import SearchConfig
    from leaderboard.submit import reference_log

    objective = Objective((-5.0, -5.0), (0.2, 1.0))
    tasks = tuple(dataclasses.replace(t, objective=objective) for t in tiny_protocol.tasks[:2])
    search = SearchConfig(coarse=(0.0, 1.0), refine=(0.5,), tolerance=100.0, search_seeds=1, confirm_seeds=2,
                          random_episodes=2, knots=2, generations=1, population=2)
    protocol = dataclasses.replace(tiny_protocol, version="test-tiny-v2", tasks=tasks, objective=objective, search=search,
                                   schedule_tasks=("in-distribution",))
    PROTOCOLS[protocol.version] = protocol
    try:
        store = Store(tmp_path / "lb.sqlite")
        compute_references(protocol, store, data_dir=str(tiny_data), progress=False)
        ref = store.reference(protocol.version, "in-distribution")
        assert ref["ref_max"] == max(ref["static"]["mean"], ref["schedule"]["mean"])
        assert ref["ref_min"] == pytest.approx(np.mean(ref["random"]["scores"]))
        assert len(ref["static"]["scores"]) == 2 and set(ref["static"]["seeds"]).isdisjoint(ref["random"]["seeds"])
        assert not set(ref["static"]["seeds"]) & set(ref["static_search"]["seeds"])  # confirmed on fresh seeds
        lasting = ref["static_search"]["lasting_share"]  # the tiny corpus runs out at high shares
        assert lasting is not None and {"0", "1", f"{lasting:g}"} <= set(ref["static_search"]["means"])
        assert ref["headroom"]["mean"] == pytest.approx(ref["schedule"]["mean"] - ref["static"]["mean"])
        assert "schedule" not in store.reference(protocol.version, "unseen-model")  # schedules only where asked
        rows = {r.name: r for r in ranked(store, protocol.version)}  # the oracles are rows, marked as references
        static_row, schedule_row = rows["Static oracle (reference)"], rows["Schedule oracle (reference)"]
        assert static_row.status == schedule_row.status == "reference"
        assert set(static_row.tasks) == {"in-distribution", "unseen-model"} and set(schedule_row.tasks) == {"in-distribution"}
        best = schedule_row if ref["ref_max"] == ref["schedule"]["mean"] else static_row
        assert best.tasks["in-distribution"]["normalised"][0] == pytest.approx(100.0)
        # What benchmarks/leaderboard_cpu.sh does next: static-transfer from the training task's oracle, and the report.
        from leaderboard.registry import resolve_policy
        from leaderboard.report import write_report

        assert resolve_policy(store.reference(protocol.version, protocol.training_task)["static"]["label"])[1]
        page = write_report(store, protocol.version, tmp_path / "report")
        assert "Static oracle (reference)" in page.read_text()
        log = reference_log(store, protocol, tasks[0])
        lines = log.read_text().splitlines()
        # a second store resumes from the logged episodes: nothing runs again, the references are the same
        again = Store(tmp_path / "lb.sqlite")
        with again._connect() as db:
            db.execute("DELETE FROM refs")
        compute_references(protocol, again, data_dir=str(tiny_data), progress=False)
        assert log.read_text().splitlines() == lines
        assert again.reference(protocol.version, "in-distribution")["ref_max"] == ref["ref_max"]
    finally:
        del PROTOCOLS[protocol.version]


def test_a_schedule_interpolates_its_knots_over_the_episode():
    from baselines.static import TargetSchedule, share_at
    from dmix_gym.data.domains import DomainSpace
    from dmix_gym.policy import ScenarioInfo

    assert share_at((0.2,), 0.7) == 0.2 and share_at((0.0, 1.0), 0.25) == 0.25 and share_at((0.0, 1.0, 0.0), 0.75) == 0.5
    space = DomainSpace(("g/a", "g/b", "m/a"), (0, 0, 1), ("g", "m"), ("m",), (0.5, 0.5, 0.0), (0.0, 0.0, 1.0))
    policy = TargetSchedule((0.0, 1.0))
    policy.reset(ScenarioInfo({}, space, max_steps=5))
    history = History()
    shares = []
    for _ in range(5):
        history.append(np.zeros(3), {})
        shares.append(policy.act(history)[2])
    assert np.allclose(shares, [0.0, 0.25, 0.5, 0.75, 1.0])
    with pytest.raises(ValueError, match="knots must be target shares"):
        TargetSchedule((0.5, 1.2))


def test_v2_selection_sees_every_task_type_and_a_scenario_no_task_evaluates():
    from leaderboard.search_log import CONFIRM, RANDOM, SEARCH, reference_seeds
    from leaderboard.selection import selection_margin, validation_tasks

    protocol = PROTOCOLS["dmix-bench-v2"]
    tasks = validation_tasks(protocol, 2)
    assert [t.name for t in tasks] == [f"validation/{t.name}" for t in protocol.tasks] + ["validation/validation-dbpedia-math"]
    assert "dbpedia-math" not in {t.scenario for t in protocol.tasks}
    seeds = [s for t in tasks for s in t.seeds]
    others = {s for t in protocol.tasks for s in t.seeds} | {s for kind in (SEARCH, CONFIRM, RANDOM) for s in reference_seeds(kind, 10)}
    assert len(set(seeds)) == len(seeds) and not set(seeds) & others
    assert all(t.objective == protocol.objective for t in tasks)
    chosen = {"a": {"label": "a@1", "balanced_mean": 1.0}, "b": {"label": "b@1", "balanced_mean": 0.9}}
    scores = {"a@1": {"x:1": 1.1, "x:2": 0.9}, "b@1": {"x:1": 0.95, "x:2": 0.85}}
    margin = selection_margin(chosen, scores)
    assert margin["best"] == "a@1" and margin["mean"] == pytest.approx(0.1) and margin["low"] < margin["mean"] < margin["high"]
    from leaderboard.selection import ranked_algorithms

    assert ranked_algorithms(chosen) == ["a", "b"] and ranked_algorithms(chosen, leave_out=("a",)) == ["b"]
    # A candidate scored on fewer episodes (an interrupted run) never wins on a lucky few.
    from leaderboard.selection import _choose

    group = {"a": {"a@1": Path("1.pt"), "a@2": Path("2.pt")}}
    assert _choose(group, {"a@1": {"x:1": 0.5, "x:2": 0.5}, "a@2": {"x:1": 3.0}})["a"]["label"] == "a@1"


def test_a_v2_selection_prints_and_counts_only_its_own_seeds(capsys):
    from dmix.views import print_selection
    from leaderboard.selection import run_episodes_of

    # Kept from a two-seed run; this run uses one seed per task, so seed 2's episodes are not counted.
    selection = {"protocol": "dmix-bench-v2", "tasks": {"validation/a": [1], "validation/b": [7]},
                 "scores": {"sft": {"balanced": {"validation/a:1": 1.0, "validation/a:2": -5.0, "validation/b:7": 0.5}}},
                 "chosen": {"sft": {"label": "sft"}}}
    assert run_episodes_of(selection, selection["scores"]["sft"]) == {"validation/a:1": 1.0, "validation/b:7": 0.5}
    print_selection(selection)
    shown = capsys.readouterr().out
    assert "2 validation tasks x 1" in " ".join(shown.split()) and "+0.750" in shown


def test_the_headroom_benchmark_runs_and_resumes(tiny_data, tmp_path, monkeypatch):
    from benchmarks import headroom
    from leaderboard import episodes as episodes_module
    from leaderboard.protocol import SearchConfig

    scenario = tiny_scenario(tiny_data)
    task = headroom.regime_task(scenario.to_json(), {"lr_schedule": "wsd"}, (0.2, 0.8), "tiny-wsd")
    assert task.make_scenario().train.lr_schedule == "wsd"
    assert np.allclose(task.make_scenario().weights(), task.objective.reward_weights())  # the regime's own weights
    config = SearchConfig(coarse=(0.0, 1.0), refine=(0.5,), tolerance=100.0, search_seeds=1, confirm_seeds=2,
                          random_episodes=1, knots=2, generations=1, population=2)
    result = headroom.run_regime("tiny-wsd", task, 1, "test", tmp_path, config, str(tiny_data))
    assert result["headroom"]["n"] == 2 and result["objective_weights"] == [0.2, 0.8]
    assert "| tiny-wsd |" in headroom.table(tmp_path)
    lines = (tmp_path / "tiny-wsd" / "episodes.jsonl").read_text().splitlines()
    run_episode = episodes_module.run_episode
    monkeypatch.setattr(episodes_module, "run_episode", lambda *a, **k: pytest.fail("a logged episode ran again"))
    assert headroom.run_regime("tiny-wsd", task, 1, "test", tmp_path, config, str(tiny_data))["headroom"] == result["headroom"]
    assert (tmp_path / "tiny-wsd" / "episodes.jsonl").read_text().splitlines() == lines
    monkeypatch.setattr(episodes_module, "run_episode", run_episode)
    specs = ["static:target-share=0.5", "schedule:target-share=0.2,0.8"]
    more = headroom.follow_up("tiny-wsd", task, specs, 2, 1, tmp_path, str(tiny_data))
    assert not set(more["seeds"]) & set(result["static"]["seeds"])  # seeds no search or confirmation has seen
    assert more["policies"][specs[1]]["difference"]["n"] == 2 and "difference" not in more["policies"][specs[0]]


def test_the_static_search_looks_closer_until_the_best_s_neighbours_are_within_noise(monkeypatch):
    """A coarse grid's best share can sit far above its neighbours; the search halves its step until they are within
    `tolerance` of it (or the step is `min_step`), so a schedule cannot win just by falling between grid points."""
    from leaderboard import oracle
    from leaderboard.protocol import SearchConfig

    def evaluate(candidates, seeds, *args, **kwargs):  # a sharp optimum at 0.33, no noise
        return {label: np.full(len(seeds), -10 * abs(p.knots[0] - 0.33)) for label, p in candidates.items()}

    monkeypatch.setattr(oracle, "evaluate", evaluate)
    monkeypatch.setattr(oracle, "lasting_share", lambda *a, **k: None)  # a corpus that never runs out
    config = SearchConfig(coarse=(0.0, 0.5, 1.0), refine=(0.1,), tolerance=0.05, min_step=0.01)
    found = oracle.static_search(None, None, None, config)
    assert abs(found["share"] - 0.33) <= 0.0125  # so sharp an optimum: halved down to the finest step allowed
    assert found["step"] >= 0.01 and found["step"] / 2 < 0.01
    gentle = oracle.static_search(None, None, None, dataclasses.replace(config, tolerance=0.5))
    assert max(gentle["neighbour_gaps"]) <= 0.5 and gentle["step"] > found["step"]  # within noise: it stops sooner
    coarse = oracle.static_search(None, None, None, dataclasses.replace(config, tolerance=100.0))
    assert coarse["share"] == pytest.approx(0.3) and coarse["step"] == 0.1  # without the rule: a whole step away


def test_the_static_search_tries_the_largest_share_that_lasts_where_the_target_corpus_ends_the_episode(monkeypatch):
    """Where the target corpus runs out and ends the episode, the score rises with the share up to the largest share
    that lasts the horizon, then falls off a cliff: a grid steps over it (scarce-terminate: 0.0875 lasts, 0.1 does
    not, 0.0937 does), and a schedule that spends exactly the corpus would win only by the grid's resolution."""
    from leaderboard import oracle
    from leaderboard.protocol import SearchConfig

    def evaluate(candidates, seeds, *args, **kwargs):
        return {label: np.full(len(seeds), p.knots[0] if p.knots[0] <= 0.0937 else p.knots[0] - 1.0)
                for label, p in candidates.items()}

    monkeypatch.setattr(oracle, "evaluate", evaluate)
    config = SearchConfig(coarse=(0.05, 0.15, 0.3), refine=(0.05,), tolerance=0.02, min_step=0.0125)
    monkeypatch.setattr(oracle, "lasting_share", lambda *a, **k: 0.0937)
    assert oracle.static_search(None, None, None, config)["share"] == 0.0937
    monkeypatch.setattr(oracle, "lasting_share", lambda *a, **k: None)
    assert oracle.static_search(None, None, None, config)["share"] < 0.0937


def test_the_largest_lasting_share_lasts_and_one_more_sequence_a_step_does_not(tiny_data):
    from dmix_gym.data import build_data
    from dmix_gym.sampler import MixtureSampler, steps_lasted
    from leaderboard.oracle import lasting_share
    from leaderboard.protocol import Task

    scenario = tiny_scenario(tiny_data, target_fraction=0.5, max_steps=6)
    task = Task("scarce", scenario.to_json(), "smoke", (1,))
    share = lasting_share(task, str(tiny_data))
    shards = build_data(scenario.data, str(tiny_data), progress=False)
    space = shards.domain_space
    sampler = MixtureSampler.for_episode([shards.train_sequences(d) for d in range(space.size)], space.field_of,
                                         scenario.train, shards.seq_len)
    per_step = sampler.sequences_per_step
    lasted = {s: steps_lasted(sampler, (1 - s) * np.asarray(space.p0) + s * np.asarray(space.p_star), 6)
              for s in (share, share + 1 / per_step)}
    assert 0 < share < 1 and lasted[share] == 6 and lasted[share + 1 / per_step] < 6
    repeating = Task("scarce", tiny_scenario(tiny_data, target_fraction=0.05, on_exhausted="repeat").to_json(), "smoke", (1,))
    assert lasting_share(repeating, str(tiny_data)) is None and lasting_share(
        Task("plenty", tiny_scenario(tiny_data, max_steps=1).to_json(), "smoke", (1,)), str(tiny_data)) is None


def test_compare_pairs_two_submissions_by_seed_and_a_reference_without(tmp_path):
    from scipy import stats

    from dmix_gym.errors import ConfigError
    from leaderboard.compare import compare_rows
    from leaderboard.scores import welch_difference

    protocol = PROTOCOLS["dmix-bench-v2"]
    task = protocol.tasks[0]
    store = Store(tmp_path / "results.sqlite")
    seeds = list(task.seeds[:4])
    rows = {"ahead": [1.10, 1.21, 1.05, 1.16], "behind": [1.00, 1.12, 0.94, 1.07], "noisy": [1.3, 0.9, 1.2, 0.85]}
    for name, scores in rows.items():
        store.begin(name, protocol.version, name, name)
        for seed, score in zip(seeds, scores):
            store.add_episode(name, protocol.version, task.name, seed, [0.0, 0.0], score, 0.0, 0, 0.0, {})
        store.finish(name, protocol.version)
    static = {"label": "static:target-share=0.15", "seeds": [5_001_000, 5_001_001, 5_001_002], "scores": [1.0, 1.02, 0.98]}
    store.set_reference(protocol.version, task.name, 0.5, 1.0, {"static": static})

    (paired,) = compare_rows(store, protocol, "ahead", "behind")
    assert paired.paired and paired.n == 4 and paired.verdict == "ahead"
    assert paired.mean == pytest.approx(100 * np.mean(np.subtract(rows["ahead"], rows["behind"])) / 0.5)
    assert paired.row == pytest.approx(normalised_score(np.mean(rows["ahead"]), 0.5, 1.0))
    assert compare_rows(store, protocol, "noisy", "behind")[0].verdict == "within noise"
    (unpaired,) = compare_rows(store, protocol, "ahead", "Static oracle (reference)")
    expected = stats.ttest_ind(rows["ahead"], static["scores"], equal_var=False).confidence_interval()
    assert not unpaired.paired and unpaired.verdict == "ahead"
    assert (unpaired.low, unpaired.high) == pytest.approx((200 * expected.low, 200 * expected.high))
    assert welch_difference([1, 2, 3], [1, 2, 3])["mean"] == 0.0
    with pytest.raises(ConfigError, match="no row 'nobody'"):
        compare_rows(store, protocol, "ahead", "nobody")


def test_static_transfer_is_the_training_tasks_better_confirmed_static_mixture():
    from leaderboard.recommend import static_transfer

    line = {"label": "static:target-share=0.15", "mean": 1.2}
    domain = {"label": "domains:target/c01=0.2", "mean": 1.3}
    assert static_transfer({"static": line, "domain": domain}) == domain["label"]
    assert static_transfer({"static": line, "domain": {**domain, "mean": 1.1}}) == line["label"]
    assert static_transfer({"static": line}) == line["label"]
    assert static_transfer({"ref_min": 0.8, "ref_max": 1.2}) is None and static_transfer(None) is None


def test_a_policy_takes_its_episodes_from_another_protocol_on_the_tasks_they_share(tiny_protocol, tiny_data, tmp_path,
                                                                                    monkeypatch):
    """v3 re-ranks v2's tasks: an unchanged policy's episodes there are the same, so they are taken, not re-run; a task
    that changed (other seeds) runs, and another policy takes nothing."""
    from leaderboard import episodes as episodes_module
    from leaderboard.table import compute_cell

    objective = Objective((-5.0, -5.0), (1.0, 1.0))
    tasks = tuple(dataclasses.replace(task, objective=objective) for task in tiny_protocol.tasks)
    older = dataclasses.replace(tiny_protocol, version="test-tiny-older", tasks=tasks, objective=objective)
    changed = dataclasses.replace(tasks[1], seeds=(EVAL_SEED_BASE + 150,), description="a new description")
    newer = dataclasses.replace(older, version="test-tiny-newer", tasks=(tasks[0], changed, *tasks[2:]))
    for protocol in (older, newer):
        monkeypatch.setitem(PROTOCOLS, protocol.version, protocol)
    db = tmp_path / "lb.sqlite"
    store = Store(db)
    assert run("baseline:uniform", "uniform", older, tiny_data, db) == "done"
    ran = []
    real = episodes_module.run_episode
    monkeypatch.setattr(episodes_module, "run_episode", lambda policy, task, *a, **k: ran.append(task.name) or
                        real(policy, task, *a, **k))
    assert run("baseline:uniform", "uniform", newer, tiny_data, db) == "done"
    assert ran == ["unseen-model"]  # the changed task only
    def episodes(protocol):
        return {(e["task"], e["seed"]): e for e in store.episodes(protocol.version, "uniform")}
    old, new = episodes(older), episodes(newer)
    assert set(new) == set(old) - {("unseen-model", EVAL_SEED_BASE + 100)} | {("unseen-model", EVAL_SEED_BASE + 150)}
    assert all(new[key] == {**old[key], "protocol": newer.version} for key in old if key in new)
    row = ranked(store, newer.version)[0]
    assert "episodes shared with test-tiny-older" in compute_cell(row)
    ran.clear()
    assert run("baseline:naive", "naive", newer, tiny_data, db) == "done"
    assert len(ran) == sum(len(task.seeds) for task in newer.tasks)  # another policy: every episode its own
    same = dataclasses.replace(older, version="test-tiny-same")
    monkeypatch.setitem(PROTOCOLS, same.version, same)
    ran.clear()
    assert run("baseline:uniform", "uniform", same, tiny_data, db) == "done" and ran == []  # every task shared
    assert len(store.episodes(same.version, "uniform")) == len(old)


def test_model_selection_scores_per_field_agents_with_the_splits_they_will_act_with(tiny_protocol, tiny_data, tmp_path,
                                                                                    monkeypatch):
    from agents.agent import TransformerAgent
    from agents.networks import AgentConfig
    from agents.offline_data import load_offline
    from dmix_gym.data.domains import source_space
    from leaderboard import official, selection

    data = load_offline(tiny_protocol.dataset, window=4, space="source")
    TransformerAgent.create(data.domain_space, data.feedback_mean, data.feedback_std,
                            AgentConfig(window=4, d_model=16, layers=1, heads=2, ffn=32), 0, name="sft").save(tmp_path / "sft.pt")
    fine = load_offline(tiny_protocol.dataset, window=4).domain_space
    assert data.domain_space == source_space(fine)
    target = next(n for n, f in zip(fine.names, fine.field_of) if f != 0)
    splits = f"domains:source=0.9,target/{target.split('/', 1)[1]}=0.1"
    jobs = []

    def record(batch, *args, **kwargs):
        jobs.extend(batch)
        return ((i, {"balanced": 1.0}) for i in range(len(batch)))

    monkeypatch.setattr(selection, "run_episodes", record)
    plain = selection.select_models(tmp_path, tiny_protocol.version, seeds=1, data_dir=str(tiny_data), progress=False)
    split = selection.select_models(tmp_path, tiny_protocol.version, seeds=1, data_dir=str(tiny_data), progress=False,
                                    splits=splits)
    assert [spec for spec, _, _ in jobs] == [str(tmp_path / "sft.pt"), f"{tmp_path / 'sft.pt'}@{splits}"]  # scored anew
    assert "splits" not in plain["chosen"]["sft"] and split["chosen"]["sft"]["splits"] == splits
    monkeypatch.setattr(official, "OFFICIAL", tmp_path / "official")
    spec = official.ship_agents(split["chosen"], "test-tiny-v0")["sft"]
    assert spec == f"official:test-tiny-v0/sft@{splits}"
    assert (tmp_path / "official" / "agents" / "test-tiny-v0" / "sft.splits").read_text().strip() == splits
    official.ship_agents(plain["chosen"], "test-tiny-v0")  # shipped again without: no stale splits file
    assert not (tmp_path / "official" / "agents" / "test-tiny-v0" / "sft.splits").exists()


def test_model_selection_shortlist_plays_the_rest_with_each_algorithms_best_of_the_first_rung(tiny_protocol, tiny_data,
                                                                                             tmp_path, monkeypatch):
    from agents.agent import TransformerAgent
    from agents.networks import AgentConfig
    from agents.offline_data import load_offline
    from agents.offline_rl import snapshot_path
    from leaderboard import selection

    data = load_offline(tiny_protocol.dataset, window=4)
    config = AgentConfig(window=4, d_model=16, layers=1, heads=2, ffn=32)
    for steps in (500, 1000, 1500):
        TransformerAgent.create(data.domain_space, data.feedback_mean, data.feedback_std, config, steps, name="cql").save(
            snapshot_path(tmp_path, "cql", steps))
    first_rung = {"500.pt": 1.0, "1000.pt": 3.0, "1500.pt": 2.0}
    played = []

    def score(batch, *args, **kwargs):  # 1500 would win the second seed: the cut keeps only 1000
        played.extend((Path(spec).name, seed) for spec, _, seed in batch)
        return ((i, {"balanced": first_rung[Path(spec).name] if seed == VALIDATION_SEED_BASE else float(Path(spec).stem)})
                for i, (spec, _, seed) in enumerate(batch))

    monkeypatch.setattr(selection, "run_episodes", score)
    built = []
    make_env = selection.Task.make_env
    monkeypatch.setattr(selection.Task, "make_env", lambda task, *a, **k: built.append(task.name) or make_env(task, *a, **k))
    with pytest.raises(selection.ConfigError, match="at least one"):
        selection.select_models(tmp_path, tiny_protocol.version, seeds=2, data_dir=str(tiny_data), progress=False, shortlist=0)
    result = selection.select_models(tmp_path, tiny_protocol.version, seeds=2, data_dir=str(tiny_data), progress=False,
                                     shortlist=1)
    second = VALIDATION_SEED_BASE + 1
    assert sorted(played) == sorted([(f"{s}.pt", VALIDATION_SEED_BASE) for s in (500, 1000, 1500)] + [("1000.pt", second)])
    assert result["chosen"]["cql"]["label"] == "cql@1000" and result["shortlist"] == 1
    assert result["chosen"]["cql"]["balanced_mean"] == pytest.approx((3.0 + 1000.0) / 2)
    assert sorted(built) == sorted(set(built))  # each task's env built once over both rungs
    played.clear()  # without the cut every candidate plays the rest, and the second seed's best wins
    result = selection.select_models(tmp_path, tiny_protocol.version, seeds=2, data_dir=str(tiny_data), progress=False)
    assert sorted(played) == [("1500.pt", second), ("500.pt", second)] and result["chosen"]["cql"]["label"] == "cql@1500"


def test_against_ceiling_flags_a_row_above_ref_max_beyond_noise_only(tmp_path):
    from leaderboard.compare import against_ceiling

    protocol = PROTOCOLS["dmix-bench-v2"]
    first, second = protocol.tasks[:2]
    store = Store(tmp_path / "results.sqlite")
    rows = {"above": [1.30, 1.32, 1.29, 1.31], "level": [1.20, 1.25, 1.15, 1.22], "running": [2.0, 2.0]}
    for name, scores in rows.items():
        store.begin(name, protocol.version, name, name)
        for seed, score in zip(first.seeds, scores):
            store.add_episode(name, protocol.version, first.name, seed, [0.0, 0.0], score, 0.0, 0, 0.0, {})
        if name != "running":
            store.finish(name, protocol.version)
    oracle = {"label": "domains:target=1", "seeds": [5_001_000, 5_001_001, 5_001_002], "scores": [1.19, 1.21, 1.20]}
    line = {"label": "static:target-share=0.15", "seeds": oracle["seeds"], "scores": [1.0, 1.02, 0.98]}
    store.set_reference(protocol.version, first.name, 0.2, 1.2, {"static": line, "domain": oracle, "ref_max_from": "domain"})
    store.set_reference(protocol.version, second.name, 0.2, 1.2, {"static": line})  # no ref_max_from: not checked

    found = dict(against_ceiling(store, protocol))
    assert set(found) == {"above", "level"}  # a running row is not checked yet
    assert found["above"].verdict == "ahead" and found["level"].verdict == "within noise"
    assert found["above"].other == pytest.approx(100.0) and found["above"].task == first.name
    assert found["above"].mean == pytest.approx(100 * (np.mean(rows["above"]) - 1.2))


def test_a_row_above_the_ceiling_moves_it_only_when_ahead_paired_on_the_ceilings_seeds(tiny_protocol, tiny_data, tmp_path):
    """A flagged row runs on the ceiling oracle's confirmation seeds; ahead there (paired), it becomes ref_max. A second
    row with the same policy plays the same episodes: level with the new ceiling, the reference stays."""
    from leaderboard.ceiling import move_ceilings
    from leaderboard.registry import resolve_policy
    from leaderboard.search_log import CONFIRM, reference_seeds
    from leaderboard.submit import FrozenProtocol

    objective = Objective((-5.0, -5.0), (0.2, 1.0))
    task = dataclasses.replace(tiny_protocol.tasks[0], objective=objective)
    protocol = dataclasses.replace(tiny_protocol, version="test-tiny-ceiling", tasks=(task,), objective=objective)
    PROTOCOLS[protocol.version] = protocol
    try:
        store = Store(tmp_path / "lb.sqlite")
        seeds = reference_seeds(CONFIRM, 2)
        oracle = {"label": "static:target-share=0.5", "seeds": seeds, "scores": [-90.0, -91.0], "mean": -90.5, "std": 0.7}
        store.set_reference(protocol.version, task.name, -100.0, -90.5, {"static": oracle, "ref_max_from": "static"})
        spec = "baseline:uniform"
        fingerprint = resolve_policy(spec)[1]
        for name in ("uniform", "uniform-again"):
            store.begin(name, protocol.version, spec, fingerprint)
            for seed in task.seeds:  # scored far above the ceiling on the evaluation seeds
                store.add_episode(name, protocol.version, task.name, seed, [0.0, 0.0], 1_000.0 + seed % 2, 0.0, 0, 0.0, {})
            store.finish(name, protocol.version)
        frozen = dataclasses.replace(protocol, frozen="test")
        with pytest.raises(FrozenProtocol):
            move_ceilings(store, frozen, data_dir=str(tiny_data), progress=False)

        checks = {c["row"]: c for c in move_ceilings(store, protocol, data_dir=str(tiny_data), progress=False)}
        ref = store.reference(protocol.version, task.name)
        first = checks["uniform"]
        assert first["seeds"] == seeds and first["moved"] and first["minus_ceiling"]["low"] > 0
        assert ref["ref_max_from"] == "row:uniform" and ref["ref_max"] == pytest.approx(first["mean"])
        assert ref["row:uniform"]["scores"] == first["scores"] and ref["static"] == oracle  # the oracle is kept
        # the second row was checked against the moved ceiling (its own policy's episodes): level, nothing moves
        again = checks["uniform-again"]
        assert again["ceiling"] == "row:uniform" and again["scores"] == first["scores"] and not again["moved"]
        assert [c["row"] for c in ref["ceiling_checks"]] == ["uniform", "uniform-again"]
        assert move_ceilings(store, protocol, data_dir=str(tiny_data), progress=False) == []  # each check made once
    finally:
        del PROTOCOLS[protocol.version]
