"""The `dmix` command: thin adapters from command-line options to `dmix.pipeline` and the packages' functions."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from dmix_gym.errors import user_error
from leaderboard.protocol import DEFAULT_PROTOCOL, DEFAULT_SMOKE_PROTOCOL, PROTOCOLS

from .views import console, print_leaderboard, print_manifest

app = typer.Typer(help="dmix: an offline-RL environment and benchmark for LLM data mixing.", no_args_is_help=True,
                  pretty_exceptions_show_locals=False)
data_app = typer.Typer(help="Build and inspect a scenario's data (fields, tokenizer, domains, shards).", no_args_is_help=True)
env_app = typer.Typer(help="Run DataMix-v0 episodes.", no_args_is_help=True)
agents_app = typer.Typer(help="Train the Data Mixing Agent (SFT, CQL via d3rlpy) and roll out any policy.", no_args_is_help=True)
scenarios_app = typer.Typer(help="Draw training scenarios from a scenario space (a distribution of scenarios).",
                             no_args_is_help=True)
leaderboard_app = typer.Typer(help="Run policies through the evaluation protocol and rank them.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(env_app, name="env")
app.add_typer(agents_app, name="agents")
app.add_typer(scenarios_app, name="scenarios")
app.add_typer(leaderboard_app, name="leaderboard")

Scenario = Annotated[str, typer.Option(help="scenario name or path to a scenario JSON file")]
Preset = Annotated[str, typer.Option(help="scale preset: smoke | cpu | paper")]
DataDir = Annotated[Optional[Path], typer.Option(help="raw data root (default: $DMIX_DATA_DIR, else the data shipped in the package)")]
CacheDir = Annotated[Optional[Path], typer.Option(help="generated-files root (default: $DMIX_CACHE_DIR, ~/.cache/dmix)")]
Device = Annotated[str, typer.Option(help="auto | cpu | cuda")]
Protocol = Annotated[str, typer.Option(help=f"protocol version, e.g. {DEFAULT_PROTOCOL} (cpu) or {DEFAULT_SMOKE_PROTOCOL}; "
                                              f"one of: {', '.join(PROTOCOLS)} (v0, v1 frozen, readable)")]
DEBUG_ENV = "DMIX_DEBUG"  # set (or --debug) to see the traceback of a user error
Db = Annotated[Optional[Path], typer.Option(help="results database (default: <cache>/leaderboard.sqlite)")]


def _protocol(version: str):
    """The protocol a command names, resolved once at the edge (a bad version fails before any long work starts)."""
    from leaderboard.protocol import get_protocol

    return get_protocol(version)


def _db(db: Optional[Path], cache_dir: Optional[Path]) -> Path:
    from leaderboard.submit import default_db

    return db or default_db(cache_dir)


@data_app.command("build")
def data_build(scenario: Scenario = "general-math", preset: Preset = "cpu", data_dir: DataDir = None,
               cache_dir: CacheDir = None,
               force: Annotated[bool, typer.Option(help="rebuild even if a built folder exists")] = False) -> None:
    """Build (or verify) the data of a scenario at a preset."""
    from .pipeline import build

    build(scenario, preset, data_dir, cache_dir, force)


@data_app.command("estimate-start")
def data_estimate_start(
    scenario: Scenario = "general-math", preset: Preset = "cpu",
    samples: Annotated[int, typer.Option(help="texts sampled from the base checkpoint")] = 256,
    seed: Annotated[int, typer.Option(help="sampling seed")] = 0,
    data_dir: DataDir = None, cache_dir: CacheDir = None, device: Device = "auto",
) -> None:
    """Estimate the start state p_0 from the base model's own samples (paper App. B), without the source data."""
    from .pipeline import estimate_start

    estimate_start(scenario, preset, samples, seed, data_dir, cache_dir, device)


@data_app.command("info")
def data_info(scenario: Scenario = "general-math", preset: Preset = "cpu", cache_dir: CacheDir = None,
              as_json: Annotated[bool, typer.Option("--json", help="print the manifest as JSON")] = False) -> None:
    """Print a built scenario's manifest: domains, tokens, p0 and p*."""
    from dmix_gym.data import find_build, load_data_spec, load_shard_set

    spec = load_data_spec(scenario, preset)
    shards = load_shard_set(find_build(spec, cache_dir=cache_dir), expect_scenario=spec.name)
    if as_json:
        print(json.dumps(shards.manifest, indent=1))
    else:
        console.print(f"{shards.root}")
        print_manifest(shards.manifest)


@env_app.command("episode")
def env_episode(
    scenario: Scenario = "general-math",
    preset: Preset = "cpu",
    mixture: Annotated[str, typer.Option(help="fixed mixture: start (p0) | target (p*) | uniform | a target share in [0,1]")] = "start",
    seed: Annotated[int, typer.Option(help="episode seed")] = 0,
    device: Device = "auto",
    data_dir: DataDir = None,
    cache_dir: CacheDir = None,
    plot: Annotated[Optional[Path], typer.Option(help="save the mixture-over-steps plot as PNG here")] = None,
) -> None:
    """Run one DataMix-v0 episode with a fixed mixture and print each step."""
    from .pipeline import fixed_mixture_episode

    try:
        fixed_mixture_episode(scenario, preset, mixture, seed, device, data_dir, cache_dir, plot)
    except ValueError as error:
        if "mixture" in str(error) or "target share" in str(error):
            raise typer.BadParameter(str(error), param_hint="--mixture") from error
        raise


def _check_vector(vector: int | None) -> None:
    """`--vector`: None (the device's default) or a number of proxies, 0 meaning one at a time."""
    if vector is not None and vector < 0:
        raise typer.BadParameter(f"must be 0 or more, got {vector}", param_hint="--vector")


@scenarios_app.command("draw")
def scenarios_draw(
    space: Annotated[str, typer.Option(help="a shipped scenario space (train-v1) or a scenario-space JSON file")] = "train-v1",
    count: Annotated[int, typer.Option(min=1, help="draws to write")] = 8,
    start: Annotated[int, typer.Option(min=0, help="index of the first draw (draw i is always the same scenario)")] = 0,
    out: Annotated[Path, typer.Option(help="folder for the scenario files")] = Path("runs/scenarios"),
    cost: Annotated[bool, typer.Option("--by-cost", help="print the files cheapest first, each with its episode's "
                                       "training compute relative to the space's base scenario")] = False,
    data_dir: DataDir = None,
) -> None:
    """Write draws of a scenario space as scenario JSON files, which every dmix command takes as --scenario."""
    from dmix_gym.scenario_space import by_cost, draw_scenarios, load_space, write_draws

    scenario_space = load_space(space)
    draws = draw_scenarios(scenario_space, count, data_dir, start)
    paths = dict(zip((draw["name"] for draw in draws), write_draws(draws, out)))
    for draw, relative in by_cost(draws, scenario_space) if cost else ((draw, None) for draw in draws):
        print(paths[draw["name"]] if relative is None else f"{paths[draw['name']]}\t{relative:.3g}")


@app.command("collect")
def collect_cmd(
    scenario: Scenario = "general-math",
    preset: Preset = "cpu",
    trajectories: Annotated[int, typer.Option(help="episodes to collect, split evenly over the quality levels")] = 64,
    qualities: Annotated[str, typer.Option(help="candidate counts N of Algorithm 1, comma-separated")] = "1,100,1000,10000",
    name: Annotated[str, typer.Option(help="collection name (staging folder and dataset name)")] = "trajectories",
    workers: Annotated[int, typer.Option(help="parallel env workers")] = 2,
    vector: Annotated[Optional[int], typer.Option(
        help="proxies each worker trains at once on a vector env (0: one at a time; default: 16 on a GPU, 0 on a CPU)")] = None,
    backend: Annotated[str, typer.Option(help="process | ray")] = "process",
    seed: Annotated[int, typer.Option(help="seed of the trajectory plan")] = 0,
    publish: Annotated[bool, typer.Option(help="publish the Minari dataset when every episode is staged")] = True,
    overwrite: Annotated[bool, typer.Option(help="replace an existing Minari dataset of the same id")] = False,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="a scenario option KEY=VALUE over the scenario's own, "
                                                                    "e.g. target_fraction=0.01 (repeatable)")] = None,
    schedule: Annotated[str, typer.Option(help="knots of a target-share schedule, comma-separated (e.g. a schedule "
                                               "oracle's), whose noisy copies follow the Algorithm 1 episodes")] = "",
    schedule_episodes: Annotated[int, typer.Option(help="episodes along the noisy --schedule")] = 0,
    schedule_noise: Annotated[float, typer.Option(help="log-normal noise on the schedule's shares (per episode and per "
                                                       "step)")] = 0.3,
    behaviours: Annotated[Optional[Path], typer.Option(help="a JSON file of dataset v2's behaviour levels (Dirichlet, "
                                                            "tilted Algorithm 1, noisy copies of searched mixtures)")] = None,
    data_dir: DataDir = None,
    cache_dir: CacheDir = None,
) -> None:
    """Collect trajectories planned by Algorithm 1 through DataMix-v0 (resumable), then publish them to Minari."""
    from baselines.static import parse_knots
    from dmix_gym.scenario import parse_options

    from .pipeline import CollectSettings, collect_trajectories

    _check_vector(vector)
    settings = CollectSettings(scenario, preset, trajectories, tuple(int(q) for q in qualities.split(",")), name, workers,
                               backend, seed, publish, overwrite, vector, tuple(parse_options(set_ or []).items()),
                               parse_knots(schedule) if schedule else (), schedule_episodes, schedule_noise, behaviours)
    collect_trajectories(settings, data_dir, cache_dir)


@app.command("publish")
def publish_cmd(
    scenario: Scenario = "general-math",
    preset: Preset = "cpu",
    name: Annotated[str, typer.Option(help="collection name")] = "trajectories",
    overwrite: Annotated[bool, typer.Option(help="replace an existing Minari dataset of the same id")] = False,
    partial: Annotated[bool, typer.Option(help="publish even if planned episodes are still missing")] = False,
    cache_dir: CacheDir = None,
) -> None:
    """Publish a staged collection as a local Minari dataset and print its summary."""
    from .pipeline import publish_collection

    publish_collection(scenario, preset, name, overwrite, partial, cache_dir)


@app.command("run")
def run(
    scenario: Scenario = "general-math",
    preset: Preset = "smoke",
    trajectories: Annotated[int, typer.Option(help="episodes to collect for the dataset")] = 16,
    workers: Annotated[int, typer.Option(help="parallel env workers")] = 2,
    cql_steps: Annotated[int, typer.Option(help="CQL gradient steps")] = 300,
    out: Annotated[Path, typer.Option(help="where the trained agents go")] = Path("runs/main"),
    protocol: Protocol = DEFAULT_SMOKE_PROTOCOL,
    data_dir: DataDir = None,
    cache_dir: CacheDir = None,
) -> None:
    """The whole pipeline on the default data: data, an episode, trajectories -> Minari, SFT + CQL agents, leaderboard."""
    from .pipeline import run_pipeline

    run_pipeline(scenario, preset, trajectories, workers, cql_steps, out, _protocol(protocol), data_dir, cache_dir)


@agents_app.command("train")
def agents_train(
    dataset: Annotated[list[str], typer.Option(help="Minari dataset id, e.g. dmix/general-math-cpu/trajectories-v1; repeat it "
                                                    "to train on several of one domain space (the first one's feedback "
                                                    "standardisation applies)")],
    out: Annotated[Path, typer.Option(help="output folder: sft.pt / <algo>.pt, metrics, checkpoints (a re-run resumes)")],
    algo: Annotated[str, typer.Option(help="sft | cql | iql | td3bc | bc | dt (cql, iql, td3bc and bc start from <out>/sft.pt, "
                                           "training it first if missing)")] = "cql",
    window: Annotated[int, typer.Option(help="state tokens the agent reads")] = 16,
    d_model: Annotated[int, typer.Option(help="agent width")] = 256,
    layers: Annotated[int, typer.Option(help="agent Transformer layers")] = 2,
    epochs: Annotated[int, typer.Option(help="SFT epochs")] = 150,
    quality: Annotated[int, typer.Option(help="SFT imitates the episodes of this Algorithm 1 quality N")] = 10000,
    sft_top: Annotated[Optional[float], typer.Option(help="SFT imitates instead the episodes with this top share of "
                                                          "balanced returns within their scenario, whatever behaviour "
                                                          "logged them (e.g. 0.1)")] = None,
    steps: Annotated[int, typer.Option(help="gradient steps of the RL algorithm")] = 1500,
    space: Annotated[str, typer.Option(help="fine (the datasets' domains) or source (each field's share: datasets of "
                                            "other domains, e.g. a scenario space's draws, train one agent)")] = "fine",
    seed: Annotated[int, typer.Option(help="seed of SFT and the RL algorithm")] = 0,
    reward: Annotated[str, typer.Option(help="what RL and DT learn from: balanced (the leaderboard's score, per step) or env "
                                             "(eq. 6, the logged reward)")] = "balanced",
    features: Annotated[str, typer.Option(help="how the state carries the feedback: relative (its change since the episode "
                                               "began), response (that change in units of the episode's first move) or "
                                               "absolute (its level, as the paper)")] = "absolute",
    standardise_as: Annotated[Optional[str], typer.Option(help="standardise the feedback (features and reward) as "
                                                               "this protocol's objective does, not by the first "
                                                               "dataset's statistics (e.g. across draws)")] = None,
    progress: Annotated[bool, typer.Option(help="progress bars")] = True,
) -> None:
    """Train the Data Mixing Agent on a dmix Minari dataset; print where the saved policy is."""
    from .pipeline import train_agent

    train_agent(dataset, algo, out, window, d_model, layers, epochs, quality, steps, seed, progress, reward, features, sft_top,
                space, None if standardise_as is None else _protocol(standardise_as).version)


@agents_app.command("guard")
def agents_guard(
    agent: Annotated[Path, typer.Option(help="a trained agent (.pt)")],
    out: Annotated[Path, typer.Option(help="the guarded policy file to write (.json; its support beside it, .support.npz)")],
    dataset: Annotated[Optional[list[str]], typer.Option(help="the Minari datasets it trained on (repeatable, in order); "
                                                             "default: those the agent records")] = None,
    space: Annotated[Optional[str], typer.Option(help="the space it trained in: fine or source; default: the one its "
                                                      "domains show")] = None,
) -> None:
    """Guard an agent with its training data's support: outside it, the data's best episodes' mean mixture
    (`agents.support`); the file is a policy spec like any other."""
    from .pipeline import guard_agent

    guard_agent(agent, dataset, out, space)


@agents_app.command("select")
def agents_select(
    agents: Annotated[list[Path], typer.Option(help="agents folder of `dmix agents train` (sft.pt, <algo>-steps/*.pt, dt.json); "
                                                    "repeat it to choose each algorithm over several (e.g. feedback features)")],
    protocol: Protocol = DEFAULT_PROTOCOL,
    seeds: Annotated[int, typer.Option(help="validation seeds per candidate (from 4,000,000: never collected, never evaluated)")] = 2,
    every: Annotated[int, typer.Option(help="score the offline RL snapshots every this many gradient steps (and the last)")] = 500,
    out: Annotated[Optional[Path], typer.Option(help="selection JSON (default: <first agents>/selection.json; a re-run resumes)")] = None,
    workers: Annotated[int, typer.Option(help="episodes run in parallel processes")] = 1,
    ship: Annotated[bool, typer.Option(help="copy the chosen checkpoints into the package as official:<protocol>/<algo>")] = False,
    validation_draws: Annotated[Optional[str], typer.Option(help="also score on draws A..B of a scenario space that no agent "
                                                                 "trained on, e.g. train-v1:1000-1004")] = None,
    splits: Annotated[Optional[str], typer.Option(help="within-field splits every candidate acts with where its domains are "
                                                       "not the task's, a domains: spec (e.g. `dmix leaderboard "
                                                       "static-transfer`'s)")] = None,
    shortlist: Annotated[Optional[int], typer.Option(help="score every candidate on each task's first validation seed, "
                                                          "then only each algorithm's best SHORTLIST on the rest "
                                                          "(more seeds, the draws)")] = None,
    data_dir: DataDir = None,
    cache_dir: CacheDir = None,
) -> None:
    """Choose each algorithm's checkpoint by its balanced score on validation seeds; print the scores and the choices."""
    from dmix_gym.errors import ConfigError
    from leaderboard.official import ship_agents
    from leaderboard.selection import select_models

    from .views import print_selection

    if splits is not None and not splits.startswith("domains:"):
        raise ConfigError(f"--splits must be a domains: spec (e.g. domains:source=0.85,target/c01-frac-boxed=0.15), "
                          f"got {splits!r}")
    selection = select_models(agents, _protocol(protocol).version, seeds, every, out, workers, data_dir, cache_dir,
                              draws=validation_draws, splits=splits, shortlist=shortlist)
    print_selection(selection)
    if ship:
        for algo, spec in ship_agents(selection["chosen"], protocol).items():
            console.print(f"{algo}: {selection['chosen'][algo]['label']} -> [bold]{spec}[/]")


@agents_app.command("rollout")
def agents_rollout(
    policy: Annotated[str, typer.Option(help="saved agent (.pt), saved baseline (.json) or baseline:naive|uniform|start-state|regmix|dbl")],
    scenario: Scenario = "general-math",
    preset: Preset = "cpu",
    seed: Annotated[int, typer.Option(help="episode seed")] = 0,
    device: Device = "auto",
    plot: Annotated[Optional[Path], typer.Option(
        help="PNG of the mixture over time (default: rollout-<policy>-<preset>-seed<seed>.png)")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="also write the episode summary as JSON here")] = None,
    data_dir: DataDir = None,
    cache_dir: CacheDir = None,
) -> None:
    """Run a policy for one DataMix-v0 episode; print its trajectory and final feedback; save the mixture plot."""
    from .pipeline import rollout_policy

    rollout_policy(policy, scenario, preset, seed, device, plot, json_out, data_dir, cache_dir)


@agents_app.command("compare")
def agents_compare(
    policies: Annotated[str, typer.Option(help="comma-separated policies (saved files or baseline:<name>)")] = (
        "baseline:naive,baseline:uniform,baseline:start-state,baseline:dbl,baseline:regmix"),
    scenario: Scenario = "general-math",
    preset: Preset = "cpu",
    seeds: Annotated[str, typer.Option(help="comma-separated episode seeds")] = "0",
    device: Device = "auto",
    data_dir: DataDir = None,
    cache_dir: CacheDir = None,
) -> None:
    """Roll several policies out in the same env and print their mean return and final feedback side by side."""
    from .pipeline import compare_policies

    specs = [p.strip() for p in policies.split(",") if p.strip()]
    compare_policies(specs, scenario, preset, [int(seed) for seed in seeds.split(",")], device, data_dir, cache_dir)


@leaderboard_app.command("submit")
def leaderboard_submit(
    policy: Annotated[str, typer.Option(help="package.module:factory, a saved policy file, or baseline:<name>")],
    name: Annotated[str, typer.Option(help="the submission's name in the table (re-using it replaces that entry)")],
    protocol: Protocol = DEFAULT_PROTOCOL,
    workers: Annotated[int, typer.Option(help="episodes run in parallel processes")] = 1,
    vector: Annotated[Optional[int], typer.Option(
        help="a task's episodes each worker trains at once on a vector env (0: one at a time; default: 16 on a GPU, 0 on a CPU)")] = None,
    db: Db = None,
    data_dir: DataDir = None,
    cache_dir: CacheDir = None,
) -> None:
    """Run a policy through every task and seed of the protocol (resumable) and store its results."""
    from .pipeline import submit_to_leaderboard

    _check_vector(vector)
    path = _db(db, cache_dir)
    resolved = _protocol(protocol)
    status = submit_to_leaderboard(policy, name, resolved, path, workers, data_dir, cache_dir, vector)
    print_leaderboard(resolved, path)
    if status != "done":
        raise typer.Exit(1)


@leaderboard_app.command("reproduce")
def leaderboard_reproduce(
    row: Annotated[str, typer.Option(help="the shipped row to re-run, by its name in the table (e.g. Static-transfer)")],
    protocol: Protocol = DEFAULT_PROTOCOL,
    episodes: Annotated[Optional[int], typer.Option(min=1, help="how many of its episodes, the tasks in turn (default: all)")] = None,
    workers: Annotated[int, typer.Option(min=1, help="episodes run in parallel processes (one thread each)")] = 1,
    tolerance: Annotated[float, typer.Option(help="the largest |difference| that counts as reproduced")] = 1e-9,
    data_dir: DataDir = None,
    cache_dir: CacheDir = None,
) -> None:
    """Re-run a shipped row's stored episodes on this machine and print each one's difference from the stored score."""
    from leaderboard.official import load_official
    from leaderboard.reproduce import reproduce

    from .views import print_reproduced

    resolved = _protocol(protocol)
    found = list(reproduce(resolved, row, episodes, workers, data_dir, cache_dir))
    if not print_reproduced(found, load_official(resolved.version).get("run"), tolerance):
        raise typer.Exit(1)


@leaderboard_app.command("check-build")
def leaderboard_check_build(
    protocol: Protocol = DEFAULT_PROTOCOL,
    db: Db = None,
    data_dir: DataDir = None,
    cache_dir: CacheDir = None,
) -> None:
    """Whether this machine builds each task's data and base proxy like the official results (their start feedback)."""
    from leaderboard.official import open_store
    from leaderboard.submit import check_build

    from .views import print_build_check

    resolved = _protocol(protocol)
    rows = check_build(resolved, open_store(_db(db, cache_dir), resolved.version), data_dir, cache_dir)
    if not print_build_check(resolved.version, rows):
        raise typer.Exit(1)


@leaderboard_app.command("show")
def leaderboard_show(
    protocol: Protocol = DEFAULT_PROTOCOL,
    db: Db = None,
    cache_dir: CacheDir = None,
    as_markdown: Annotated[bool, typer.Option("--markdown", help="print a Markdown table (for a README) instead")] = False,
) -> None:
    """Print the ranked table of a protocol."""
    print_leaderboard(_protocol(protocol), _db(db, cache_dir), as_markdown)


@leaderboard_app.command("compare")
def leaderboard_compare(
    row: Annotated[str, typer.Argument(help="a row of the table, e.g. 'IQL agent'")],
    against: Annotated[list[str], typer.Option(help="a row to compare with (repeatable), e.g. Static-transfer or "
                                                    "'Static oracle (reference)'")],
    protocol: Protocol = DEFAULT_PROTOCOL,
    db: Db = None,
    cache_dir: CacheDir = None,
) -> None:
    """Is ROW ahead of each --against row beyond seed noise? Task-by-task differences with 95% intervals."""
    from leaderboard.compare import compare_rows
    from leaderboard.official import open_store

    from .views import print_comparison

    resolved = _protocol(protocol)
    version = resolved.version
    store = open_store(_db(db, cache_dir), version)
    comparisons = {other: compare_rows(store, resolved, row, other) for other in against}  # names checked first
    for other, differences in comparisons.items():
        print_comparison(version, row, other, differences)


@leaderboard_app.command("ceilings")
def leaderboard_ceilings(
    protocol: Protocol = DEFAULT_PROTOCOL,
    confirm: Annotated[bool, typer.Option(help="run each row above its ceiling on the ceiling's confirmation seeds "
                                               "and move the reference where it is ahead there too (paired)")] = False,
    workers: Annotated[int, typer.Option(help="episodes run in parallel processes (with --confirm)")] = 1,
    db: Db = None,
    data_dir: DataDir = None,
    cache_dir: CacheDir = None,
) -> None:
    """Is any row above its task's ref_max beyond seed noise? Then the search missed a better mixture: the reference
    moves (every finished row, every task, Welch's 95% interval against the best oracle's confirmation episodes;
    `--confirm` checks each such row paired on the oracle's seeds and moves the reference)."""
    from leaderboard.ceiling import move_ceilings
    from leaderboard.compare import against_ceiling
    from leaderboard.official import open_store

    from .views import print_ceiling_checks, print_ceilings

    resolved = _protocol(protocol)
    store = open_store(_db(db, cache_dir), resolved.version)
    print_ceilings(resolved.version, against_ceiling(store, resolved))
    if confirm:
        print_ceiling_checks(resolved.version, move_ceilings(store, resolved, workers, data_dir, cache_dir))


@leaderboard_app.command("references")
def leaderboard_references(
    protocol: Protocol = DEFAULT_PROTOCOL,
    workers: Annotated[int, typer.Option(help="episodes run in parallel processes")] = 1,
    db: Db = None,
    data_dir: DataDir = None,
    cache_dir: CacheDir = None,
) -> None:
    """Compute (or resume) the protocol's references and print them, with the seeds and episodes behind each."""
    from leaderboard.official import open_store
    from leaderboard.submit import compute_references

    from .views import print_references

    resolved = _protocol(protocol)
    store = open_store(_db(db, cache_dir), resolved.version)
    compute_references(resolved, store, data_dir, cache_dir, workers=workers)
    print_references(store, resolved)


@leaderboard_app.command("static-transfer")
def leaderboard_static_transfer(protocol: Protocol = DEFAULT_PROTOCOL, db: Db = None, cache_dir: CacheDir = None) -> None:
    """Print Static-transfer's policy spec: the protocol's training task's confirmed best static mixture."""
    from dmix_gym.errors import MissingFileError
    from leaderboard.official import open_store
    from leaderboard.recommend import static_transfer

    resolved = _protocol(protocol)
    spec = static_transfer(open_store(_db(db, cache_dir), resolved.version).reference(resolved.version,
                                                                                       resolved.training_task))
    if spec is None:
        raise MissingFileError(f"{resolved.version} has no confirmed static reference on {resolved.training_task} yet: "
                               "run `dmix leaderboard references` first")
    print(spec)


@leaderboard_app.command("backup")
def leaderboard_backup(
    out: Annotated[Path, typer.Option(help="where to write the copy (e.g. the repository's results folder)")],
    db: Db = None,
    cache_dir: CacheDir = None,
) -> None:
    """A consistent copy of a results database (SQLite's online backup), safe while a run writes to it."""
    from leaderboard.store import Store

    console.print(f"backed up to {Store(_db(db, cache_dir)).backup(out)}")


@leaderboard_app.command("export")
def leaderboard_export(
    protocol: Protocol = DEFAULT_PROTOCOL,
    names: Annotated[Optional[str], typer.Option(help="comma-separated submissions to ship (default: every finished one)")] = None,
    out: Annotated[Optional[Path], typer.Option(help="where to write (default: the package's leaderboard/official/)")] = None,
    db: Db = None,
    cache_dir: CacheDir = None,
) -> None:
    """Write a protocol run's references, feedback statistics and finished rows as its official results file."""
    from leaderboard.official import export_official, ranking_objective
    from leaderboard.store import Store

    resolved = _protocol(protocol)
    version = resolved.version
    objective = ranking_objective(resolved)
    path = export_official(Store(_db(db, cache_dir)), resolved, objective.mean, objective.std,
                           names.split(",") if names else None, out)
    console.print(f"official results of {version}: {path}")


@leaderboard_app.command("report")
def leaderboard_report(
    out: Annotated[Path, typer.Option(help="folder for index.html and its PNG plots")] = Path("runs/leaderboard"),
    protocol: Protocol = DEFAULT_PROTOCOL,
    db: Db = None,
    cache_dir: CacheDir = None,
) -> None:
    """Write a static HTML page with the ranked table and plots (scores, mixtures over time, feedback over time)."""
    from leaderboard.official import open_store
    from leaderboard.report import write_report

    path = write_report(open_store(_db(db, cache_dir), _protocol(protocol).version), protocol, out)
    console.print(f"report: {path}")


@app.command("search")
def search_cmd(
    scenario: Scenario = "general-math",
    preset: Preset = "cpu",
    model: Annotated[Optional[Path], typer.Option(help="a Hugging Face causal-LM directory trained instead of the proxy")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="a scenario option KEY=VALUE over the scenario's own "
                                                                    "(repeatable)")] = None,
    out: Annotated[Optional[Path], typer.Option(help="results folder (default: runs/search/<scenario>); re-run to resume")] = None,
    budget: Annotated[Optional[int], typer.Option(min=1, help="episodes at most, all stages and confirmation together "
                                                              "(default: as many as the search takes)")] = None,
    objective: Annotated[Optional[str], typer.Option(
        help=f"a protocol (e.g. {DEFAULT_PROTOCOL}) whose objective is maximised (default: the scenario's own reward)")] = None,
    schedules: Annotated[bool, typer.Option(help="also search target-share schedules (CMA-ES)")] = True,
    domains: Annotated[bool, typer.Option(help="also search within-field domain splits")] = True,
    search_seeds: Annotated[int, typer.Option(min=1, help="episodes per candidate while searching")] = 2,
    confirm_seeds: Annotated[int, typer.Option(min=2, help="fresh episodes confirming each winner")] = 5,
    workers: Annotated[int, typer.Option(min=1, help="episodes run in parallel processes (one thread each)")] = 1,
    data_dir: DataDir = None,
    cache_dir: CacheDir = None,
) -> None:
    """Find the mixture to continually pre-train with: the best static mixture and schedule of a scenario, confirmed
    on fresh seeds; writes them as policy files for `dmix cpt --policy` and `dmix leaderboard submit --policy`."""
    from .pipeline import SearchSettings, search_scenario
    from .views import print_search

    settings = SearchSettings(scenario, preset, model, tuple(set_ or ()), out, budget, objective, schedules, domains,
                              search_seeds, confirm_seeds, workers)
    result, folder = search_scenario(settings, data_dir, cache_dir)
    print_search(result, folder)
    if "spent" in result:
        raise typer.Exit(1)


@app.command("cpt")
def cpt(
    policy: Annotated[str, typer.Option(
        help="the mixing policy: a saved agent (.pt), a baseline JSON or baseline:<name>")] = "baseline:naive",
    model: Annotated[str, typer.Option(help="proxy (the scenario's, from its base checkpoint) | llama-10x (the proxy at 9.4x, "
                                            "from its own base) | llama-3b | a LlamaConfig .json | a Hugging Face model dir "
                                            "(any causal LM; with its tokenizer, the data is tokenized with it)")] = "proxy",
    scenario: Scenario = "general-math",
    preset: Preset = "cpu",
    tokens_per_step: Annotated[Optional[int], typer.Option(help="training tokens per re-weighting step (default: the scenario's)")] = None,
    max_steps: Annotated[Optional[int], typer.Option(help="re-weighting steps at most (default: the scenario's)")] = None,
    seed: Annotated[int, typer.Option(help="episode seed: the data order")] = 0,
    out: Annotated[Path, typer.Option(help="checkpoints, metrics.jsonl and tensorboard/ (re-run to resume)")] = Path("runs/cpt"),
    dry_run: Annotated[bool, typer.Option(help="instantiate the model on the meta device; print parameters and memory per GPU")] = False,
    gpus: Annotated[int, typer.Option(help="with --dry-run: GPUs to estimate memory for")] = 8,
    micro_batch: Annotated[Optional[int], typer.Option(help="with --dry-run: sequences per micro-batch (default: the scenario's)")] = None,
    activation_checkpointing: Annotated[bool, typer.Option(help="recompute each layer in backward")] = True,
    device: Annotated[str, typer.Option(help="auto | cuda | cpu (gloo)")] = "auto",
    objective: Annotated[Optional[str], typer.Option(
        help=f"a protocol (e.g. {DEFAULT_PROTOCOL}) whose objective sets the reward weights (default: the scenario's own)")] = None,
    data_dir: DataDir = None,
    cache_dir: CacheDir = None,
) -> None:
    """Continual pre-training driven by a policy, under FSDP: `torchrun --nproc-per-node N -m dmix cpt ...`."""
    from cpt.run import CPTConfig, run_cpt

    from .views import print_cpt_records

    config = CPTConfig(policy, out, model, scenario, preset, tokens_per_step, max_steps, seed, data_dir, cache_dir, device,
                       activation_checkpointing, objective=objective)
    if dry_run:
        from .views import print_cpt_dry_run

        print_cpt_dry_run(config, gpus, micro_batch)
        return
    records = run_cpt(config)
    import torch.distributed as dist

    from cpt.distributed import close_distributed

    if not dist.is_initialized() or dist.get_rank() == 0:
        print_cpt_records(records, f"cpt {model} with {policy}: {len(records)} steps ({out / 'metrics.jsonl'})")
    close_distributed()


@app.callback()
def _options(debug: Annotated[bool, typer.Option("--debug", help="show the traceback of a user error too")] = False) -> None:
    if debug:
        os.environ[DEBUG_ENV] = "1"


def main(argv: Optional[list[str]] = None) -> None:
    """The `dmix` command: a user error is one line on stderr and exit status 2; a bug keeps its traceback."""
    try:
        app(args=argv)
    except Exception as error:
        mistake = user_error(error)
        if mistake is None or os.environ.get(DEBUG_ENV):
            raise
        message = " ".join(str(mistake).split())
        print(f"dmix: error: {message}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
