"""A user's mistake is one line on stderr and exit status 2; --debug shows the traceback; a bug keeps it."""

import pytest

from dmix.cli import main
from dmix_gym.errors import ConfigError


def one_line_error(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dmix: error: "), err
    return lines[0]


def test_malformed_scenario_json_names_file_line_and_column(capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x",\n "fields": [\n')
    line = one_line_error(capsys, ["env", "episode", "--scenario", str(bad), "--preset", "smoke"])
    assert str(bad) in line and "line 3, column 1" in line


def test_malformed_field_names_the_file_and_field(capsys, tmp_path):
    from dmix_gym.data.spec import scenario_search_path

    spec = (scenario_search_path()[0] / "general-math.json").read_text().replace('"role": "target"', '"role": "goal"')
    bad = tmp_path / "goal.json"
    bad.write_text(spec)
    line = one_line_error(capsys, ["data", "build", "--scenario", str(bad), "--preset", "smoke"])
    assert str(bad) in line and "'math'" in line and "'goal'" in line


@pytest.mark.parametrize("argv, expected", [
    (["env", "episode", "--scenario", "nope", "--preset", "smoke"], "unknown scenario 'nope'"),
    (["env", "episode", "--preset", "tiny"], "unknown preset 'tiny'"),
    (["agents", "rollout", "--policy", "nope.pt", "--preset", "smoke"], "no policy 'nope.pt'"),
    (["agents", "rollout", "--policy", "baseline:nope", "--preset", "smoke"], "unknown baseline 'baseline:nope'"),
    (["agents", "train", "--dataset", "dmix/nope-v0", "--out", "unused"], "no Minari dataset 'dmix/nope-v0'"),
    (["leaderboard", "show", "--protocol", "dmix-bench-v9"], "unknown protocol 'dmix-bench-v9'"),
    (["agents", "train", "--dataset", "dmix/nope-v0", "--dataset", "dmix/general-math-cpu/trajectories-v1", "--out", "unused"],
     "no Minari dataset 'dmix/nope-v0'"),
    (["collect", "--preset", "smoke", "--set", "target_fraction"], "scenario option 'target_fraction' is not KEY=VALUE"),
    (["collect", "--preset", "smoke", "--set", "nope=1"], "unknown scenario override 'nope'"),
    (["collect", "--preset", "smoke", "--schedule-episodes", "2"], "--schedule-episodes needs --schedule"),
    (["collect", "--preset", "smoke", "--schedule", "0.2,0.1"], "--schedule needs --schedule-episodes N"),
    (["collect", "--preset", "smoke", "--schedule", "0.5,1.5", "--schedule-episodes", "2"],
     "schedule knots must be target shares in [0, 1], got [0.5, 1.5]"),
    (["collect", "--preset", "smoke", "--schedule", "0.5,x", "--schedule-episodes", "2"],
     "'0.5,x': knots are comma-separated target shares"),
    (["agents", "rollout", "--policy", "static:target-share=high", "--preset", "smoke"],
     "'static:target-share=high': 'high': knots are comma-separated target shares"),
])
def test_unknown_names(capsys, argv, expected):
    assert expected in one_line_error(capsys, argv)


def test_missing_data_files_name_the_file(capsys, tmp_path):
    argv = ["data", "build", "--preset", "smoke", "--data-dir", str(tmp_path / "empty"), "--cache-dir", str(tmp_path)]
    line = one_line_error(capsys, argv)
    assert "no file matches" in line and str(tmp_path / "empty") in line


def test_debug_shows_the_traceback(monkeypatch):
    monkeypatch.setenv("DMIX_DEBUG", "")  # restored after the test: --debug sets it for the process
    with pytest.raises(ConfigError, match="unknown preset"):
        main(["--debug", "env", "episode", "--preset", "tiny"])


def test_a_bug_keeps_its_traceback(monkeypatch):
    import dmix.pipeline

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(dmix.pipeline, "build", broken)
    with pytest.raises(ZeroDivisionError):
        main(["data", "build", "--preset", "smoke"])


def test_static_transfer_before_its_reference_says_which_task_and_what_to_run(capsys, tmp_path, monkeypatch):
    from leaderboard import official

    monkeypatch.setattr(official, "OFFICIAL", tmp_path / "no-official-results")  # a protocol that ships none yet
    line = one_line_error(capsys, ["leaderboard", "static-transfer", "--protocol", "dmix-bench-v3",
                                   "--db", str(tmp_path / "results.sqlite")])
    assert "in-distribution" in line and "dmix leaderboard references" in line


def test_static_transfer_on_a_fresh_store_prints_the_shipped_reference(capsys, tmp_path):
    from leaderboard.official import load_official
    from leaderboard.recommend import static_transfer

    shipped = load_official("dmix-bench-v3")
    if shipped is None:
        pytest.skip("dmix-bench-v3 ships no official results in this checkout")
    with pytest.raises(SystemExit) as exit_:
        main(["leaderboard", "static-transfer", "--protocol", "dmix-bench-v3", "--db", str(tmp_path / "results.sqlite")])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == static_transfer(shipped["references"]["in-distribution"])
