"""`dmix search`: a user's local-file scenario searched within a budget, resumed, and its answer a policy file."""

import json

import numpy as np
import pytest

from dmix.cli import main
from dmix_gym.policy import ScenarioInfo
from leaderboard.domain_search import task_domain_space
from leaderboard.protocol import SearchConfig
from leaderboard.recommend import scenario_objective, search_mixture, search_task
from leaderboard.registry import load_policy
from tests.helpers import tiny_scenario


def test_a_spent_budget_stops_the_search_and_says_what_is_best_so_far(tiny_data, tmp_path, capsys):
    scenario = tmp_path / "mine.json"
    scenario.write_text(tiny_scenario(tiny_data).to_json())
    out = tmp_path / "search"
    argv = ["search", "--scenario", str(scenario), "--preset", "smoke", "--data-dir", str(tiny_data), "--out", str(out),
            "--budget", "8", "--search-seeds", "1"]
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 1
    result = json.loads((out / "result.json").read_text())
    assert "budget of 8 episodes is spent" in result["spent"] and result["episodes"] == 8
    assert result["best_so_far"]["label"].startswith("static:target-share=")
    assert len((out / "episodes.jsonl").read_text().splitlines()) == 8 and not (out / "static.json").exists()
    assert "best so far (unconfirmed" in capsys.readouterr().out


def test_the_search_resumes_and_writes_policies_that_act_in_the_scenario(tiny_data, tmp_path):
    task = search_task(tiny_scenario(tiny_data).to_json(), "smoke")
    config = SearchConfig(coarse=(0.0, 0.5, 1.0), refine=(0.25,), tolerance=100.0, search_seeds=1, confirm_seeds=2,
                          random_episodes=2, knots=2, generations=1, population=2, domains=True, domain_pairs=2,
                          share_multiples=(0.5,), model_rounds=1, model_proposals=2)
    folder = tmp_path / "search"
    first = search_mixture(task, folder, config, budget=10, data_dir=str(tiny_data), progress=False)
    assert "spent" in first
    done = search_mixture(task, folder, config, data_dir=str(tiny_data), progress=False)
    logged = (folder / "episodes.jsonl").read_text().splitlines()
    assert done["episodes"] == len(logged) > 10  # went on from the 10 it had
    probes = {tuple(json.loads(line)["final_probes"]) for line in logged}  # what each mixture gives away elsewhere
    assert probes == {tuple(task.make_env(str(tiny_data)).unwrapped.probe_names)} and probes != {()}
    static = done["recommended"]["static"]
    assert static["mean"] == max(done["static"]["mean"], done["domain"]["mean"])
    # where a domain mixture won, the schedule search ran over its splits too, paired against it
    assert ("domain_schedule" in done) == done["domain"]["label"].startswith("domains:")
    if "domain_schedule" in done:
        assert done["domain_schedule"]["label"].startswith(done["domain"]["label"] + ";target-share=")
        assert done["domain_headroom"]["mean"] == pytest.approx(done["domain_schedule"]["mean"] - done["domain"]["mean"])
        schedules = [done[k]["mean"] for k in ("schedule", "domain_schedule")]
        assert done["recommended"]["schedule"]["mean"] == max(schedules)
    space = task_domain_space(task, str(tiny_data))
    for kind in ("static", "schedule"):
        policy = load_policy(folder / f"{kind}.json")
        policy.reset(ScenarioInfo({}, space, 4))
        assert policy.name == done["recommended"][kind]["label"]
    again = search_mixture(task, folder, config, data_dir=str(tiny_data), progress=False)  # finished: nothing re-runs
    assert (folder / "episodes.jsonl").read_text().splitlines() == logged
    assert again["recommended"] == done["recommended"]


def test_the_default_objective_is_the_scenarios_own_reward(tiny_data):
    task = search_task(tiny_scenario(tiny_data, reward_weights=(0.25, 0.75)).to_json(), "smoke")
    objective = scenario_objective(task)
    np.testing.assert_allclose(objective.reward_weights(), (0.25, 0.75))
    assert objective.score(np.array([-2.0, -4.0])) == pytest.approx(0.25 * -2.0 + 0.75 * -4.0)
