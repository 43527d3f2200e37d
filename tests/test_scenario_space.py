"""The training distribution of scenarios: valid, reproducible draws that never equal an evaluation task's settings."""

import dataclasses

import gymnasium as gym
import numpy as np
import pytest

import dmix_gym  # noqa: F401
from dmix_gym.data.sources import read_documents
from dmix_gym.data.spec import SourceSpec
from dmix_gym.errors import ConfigError
from dmix_gym.scenario_space import composition_key, draw_scenarios, load_draw, load_space, shape_of, write_draws
from dmix_gym.utils.paths import builtin_data_dir
from leaderboard.protocol import PROTOCOLS
from tests.helpers import write_tiny_corpus

DRAWS = 60


@pytest.fixture(scope="module")
def draws():
    return draw_scenarios(load_space("train-v1"), DRAWS)


def test_draws_are_valid_named_and_the_same_every_time(draws):
    assert [d["name"] for d in draws] == [f"train-v1-{i:04d}" for i in range(DRAWS)]
    for draw in draws[:10]:
        scenario = load_draw(draw, "cpu")  # a valid scenario file, read by the loader every --scenario goes through
        assert scenario.model.hidden_size == draw["model"]["hidden_size"] and scenario.train.lr == draw["train"]["lr"]
    again = draw_scenarios(load_space("train-v1"), 5, start=10)
    assert again == draws[10:15]  # draw i is always the same scenario, whichever batch it comes in


def test_draws_vary_every_axis(draws):
    def seen(key):
        return {key(d) for d in draws}
    assert len(seen(lambda d: composition_key(d["fields"][0]["train"], builtin_data_dir()))) >= 5
    assert len(seen(lambda d: composition_key(d["fields"][1]["train"], builtin_data_dir()))) >= 4
    assert len(seen(lambda d: tuple(d["fields"][1]["eval"]["files"]))) >= 3  # feedback sets
    assert len(seen(lambda d: d["model"]["hidden_size"])) == 5
    assert max(d["model"]["hidden_size"] for d in draws) >= 320  # the ladder reaches 4x the cpu proxy and beyond
    for key in ("lr", "lr_schedule", "target_fraction", "on_exhausted", "max_steps", "tokens_per_step"):
        assert len(seen(lambda d: d["train"][key])) >= 2, key


def test_no_draw_has_an_evaluation_or_validation_tasks_corpus_model_or_scarcity(draws):
    """The held-out settings of every task of every protocol (and of model selection's validation scenarios)."""
    root = builtin_data_dir()
    tasks = [t for p in PROTOCOLS.values() for t in (*p.tasks, *p.validation_scenarios) if t.preset == "cpu"]
    sources = {composition_key(t.make_scenario().data.fields[0].train.__dict__, root) for t in tasks}
    targets = {composition_key(t.make_scenario().data.fields[1].train.__dict__, root) for t in tasks}
    shapes = {shape_of(dataclasses.asdict(t.make_scenario().model)) for t in tasks}
    shapes.add(shape_of({"hidden_size": 384, "num_layers": 8, "num_heads": 6, "intermediate_size": 1024}))  # llama-10x
    fractions = {t.make_scenario().train.target_fraction for t in tasks} - {1.0}
    assert len(sources) >= 3 and len(targets) >= 2 and len(shapes) >= 3 and fractions == {0.01}
    for draw in draws:
        fields = draw["fields"]
        assert composition_key(fields[0]["train"], root) not in sources
        assert composition_key(fields[1]["train"], root) not in targets
        assert shape_of(draw["model"]) not in shapes
        assert draw["train"]["target_fraction"] not in fractions


def test_a_ladder_with_a_held_out_shape_is_refused():
    space = load_space("train-v1")
    with pytest.raises(ConfigError, match="held-out model shapes"):
        dataclasses.replace(space, models=space.models + space.held_out_models[:1])


def test_a_draw_builds_and_steps_at_smoke_scale(tmp_path):
    space = dataclasses.replace(load_space("train-v1"), preset="smoke", max_steps=(4,), tokens_per_step=(4096,),
                                models=({"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 88},))
    path = write_draws(draw_scenarios(space, 1, start=3), tmp_path)[0]
    env = gym.make("DataMix-v0", scenario=str(path), preset="smoke", progress=False)
    env.reset(seed=0)
    _, reward, *_ , info = env.step(env.unwrapped.p0)
    assert np.isfinite(reward) and np.all(np.isfinite(info["feedback"]))
    assert env.unwrapped.scenario.data.name == "train-v1-0003" and env.unwrapped.max_steps == 4


def test_a_label_filter_keeps_those_labels_and_every_unlabelled_record(tmp_path):
    root = write_tiny_corpus(tmp_path)
    every = read_documents(SourceSpec(files=("general/*.jsonl",)), root)
    labels = sorted({d.label for d in every if d.label is not None})
    kept = read_documents(SourceSpec(files=("general/*.jsonl",), labels=tuple(labels[:1])), root)
    assert kept and {d.label for d in kept} <= {labels[0], None} and len(kept) < len(every)
    with pytest.raises(ConfigError, match="labels must be a non-empty list"):
        SourceSpec.from_dict({"files": ["x"], "labels": "Artist"})


def test_model_selection_can_also_score_on_draws_no_agent_trained_on():
    from leaderboard.selection import draw_tasks, parse_draws, validation_tasks

    protocol = PROTOCOLS["dmix-bench-v3"]
    space, indices = parse_draws("train-v1:1000-1001")
    assert space == "train-v1" and list(indices) == [1000, 1001]
    tasks = validation_tasks(protocol, 2, draw_tasks(space, indices, protocol.objective))
    drawn = [t for t in tasks if "/draw/" in t.name]
    assert [t.name for t in drawn] == ["validation/draw/train-v1-1000", "validation/draw/train-v1-1001"]
    assert drawn[0].make_scenario().name == "train-v1-1000-cpu"  # the task builds the draw at its preset
    seeds = [s for t in tasks for s in t.seeds]
    assert len(seeds) == len(set(seeds)) == 2 * len(tasks)  # every task on its own validation seeds
    for bad in ("train-v1", "train-v1:a-b", "train-v1:5-3", ":1-2"):
        with pytest.raises(ConfigError, match="validation draws"):
            parse_draws(bad)


def test_draws_by_cost_cheapest_first_with_compute_in_proportion_to_steps_tokens_and_size(draws):
    from dmix_gym.scenario import make_scenario
    from dmix_gym.scenario_space import by_cost, episode_flops

    space = load_space("train-v1")
    ordered = by_cost(draws[:8], space)
    assert sorted(d["name"] for d, _ in ordered) == sorted(d["name"] for d in draws[:8])
    assert [cost for _, cost in ordered] == sorted(cost for _, cost in ordered)
    base = make_scenario(space.base, space.preset)
    longer = dataclasses.replace(base, train=dataclasses.replace(base.train, max_steps=2 * base.train.max_steps))
    assert episode_flops(longer) == pytest.approx(2 * episode_flops(base))
    wider = dataclasses.replace(base, model=dataclasses.replace(base.model, hidden_size=2 * base.model.hidden_size))
    assert episode_flops(wider) > 2 * episode_flops(base)
