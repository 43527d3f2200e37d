"""The `dmix` command: thin sub-commands over the packages' public functions."""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="dmix: an offline-RL environment and benchmark for LLM data mixing.", no_args_is_help=True,
                  pretty_exceptions_show_locals=False)
data_app = typer.Typer(help="Build and inspect a scenario's data (fields, tokenizer, domains, shards).", no_args_is_help=True)
env_app = typer.Typer(help="Run DataMix-v0 episodes.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(env_app, name="env")
console = Console()

ScenarioOpt = typer.Option("general-math", help="scenario name or path to a scenario JSON file")
PresetOpt = typer.Option("cpu", help="scale preset: smoke | cpu | paper")
DataDirOpt = typer.Option(None, help="raw data root (default: $DMIX_DATA_DIR, ../shared/data, ~/.cache/dmix/data)")
CacheDirOpt = typer.Option(None, help="generated-files root (default: $DMIX_CACHE_DIR, ~/.cache/dmix)")


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@data_app.command("build")
def data_build(
    scenario: str = ScenarioOpt,
    preset: str = PresetOpt,
    data_dir: Optional[Path] = DataDirOpt,
    cache_dir: Optional[Path] = CacheDirOpt,
    force: bool = typer.Option(False, help="rebuild even if a built folder exists"),
) -> None:
    """Build (or verify) the data of a scenario at a preset."""
    from datasets_builder import build_data, load_data_spec

    spec = load_data_spec(scenario, preset)
    started = time.perf_counter()
    shards = build_data(spec, data_dir, cache_dir, force=force)
    console.print(f"[bold]{spec.name}[/] at preset [bold]{preset}[/]: {shards.root}")
    console.print(f"ready in {time.perf_counter() - started:.1f} s (build took {shards.manifest['build_seconds']} s), peak memory {_peak_rss_mib():.0f} MiB")
    _print_manifest(shards.manifest)


@data_app.command("info")
def data_info(
    scenario: str = ScenarioOpt,
    preset: str = PresetOpt,
    cache_dir: Optional[Path] = CacheDirOpt,
    as_json: bool = typer.Option(False, "--json", help="print the manifest as JSON"),
) -> None:
    """Print a built scenario's manifest: domains, tokens, p0 and p*."""
    from datasets_builder import build_dir, load_data_spec, load_shard_set

    spec = load_data_spec(scenario, preset)
    shards = load_shard_set(build_dir(spec, cache_dir), expect_scenario=spec.name)
    if as_json:
        print(json.dumps(shards.manifest, indent=1))
    else:
        console.print(f"{shards.root}")
        _print_manifest(shards.manifest)


def _print_manifest(manifest: dict) -> None:
    space = manifest["domain_space"]
    table = Table(title=f"{manifest['scenario']} / {manifest['preset']}: {len(manifest['domains'])} domains, seq_len {manifest['seq_len']}, vocab {manifest['tokenizer']['vocab_size']}")
    for column in ("#", "domain", "docs", "tokens", "train seqs", "p0", "p*"):
        table.add_column(column, justify="left" if column == "domain" else "right")
    for i, d in enumerate(manifest["domains"]):
        table.add_row(str(i), d["name"], f"{d['documents']:,}", f"{d['tokens']:,}", f"{d['train_sequences']:,}",
                      f"{space['p0'][i]:.3f}", f"{space['p_star'][i]:.3f}")
    table.add_row("", "sum", "", f"{sum(d['tokens'] for d in manifest['domains']):,}", "",
                  f"{sum(space['p0']):.3f}", f"{sum(space['p_star']):.3f}")
    console.print(table)
    fields = Table(title="fields")
    for column in ("field", "role", "docs", "tokens", "eval pairs", "dropped (eval overlap)"):
        fields.add_column(column)
    for name, f in manifest["fields"].items():
        fields.add_row(name, f["role"], f"{f['documents']:,}", f"{f['tokens']:,}", str(f["eval_pairs"]), str(f["decontaminated"]))
    console.print(fields)


@env_app.command("episode")
def env_episode(
    scenario: str = ScenarioOpt,
    preset: str = PresetOpt,
    mixture: str = typer.Option("start", help="fixed mixture: start (p0) | target (p*) | uniform | a target share in [0,1]"),
    seed: int = typer.Option(0, help="episode seed"),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    data_dir: Optional[Path] = DataDirOpt,
    cache_dir: Optional[Path] = CacheDirOpt,
    plot: Optional[Path] = typer.Option(None, help="save the mixture-over-steps plot as PNG here"),
) -> None:
    """Run one DataMix-v0 episode with a fixed mixture and print each step."""
    import gymnasium as gym
    import numpy as np

    import dmix_gym  # noqa: F401

    env = gym.make("DataMix-v0", scenario=scenario, preset=preset, device=device, data_dir=data_dir, cache_dir=cache_dir,
                   render_mode="rgb_array")
    base = env.unwrapped
    action = {"start": base.p0, "target": base.p_star, "uniform": np.ones(base.num_domains)}.get(mixture)
    if action is None:
        share = float(mixture)
        if not 0 <= share <= 1:
            raise typer.BadParameter(f"target share must be in [0, 1], got {share}")
        action = (1 - share) * base.p0 + share * base.p_star
    _, info = env.reset(seed=seed)
    fields = base.domain_space.fields
    table = Table(title=f"{base.scenario.name}: episode with mixture {mixture!r}, seed {seed}")
    for column in ["step", *[f"f({f})" for f in fields], "reward", "train loss", "train s", "eval s"]:
        table.add_column(column, justify="right")
    table.add_row("0", *[f"{v:.4f}" for v in info["feedback"]], "", "", "", f"{info['eval_seconds']:.2f}")
    total, t, done = 0.0, 0, False
    started = time.perf_counter()
    while not done:
        _, r, terminated, truncated, info = env.step(action)
        t += 1
        total += r
        done = terminated or truncated
        table.add_row(str(t), *[f"{v:.4f}" for v in info["feedback"]], f"{r:+.4f}", f"{info['train_loss']:.3f}",
                      f"{info['train_seconds']:.2f}", f"{info['eval_seconds']:.2f}")
    console.print(table)
    console.print(f"return {total:+.4f} over {t} steps in {time.perf_counter() - started:.1f} s ({'terminated' if terminated else 'truncated'})")
    if plot:
        from PIL import Image

        Image.fromarray(env.render()).save(plot)
        console.print(f"plot: {plot}")


@app.command("collect")
def collect_cmd(
    scenario: str = ScenarioOpt,
    preset: str = PresetOpt,
    trajectories: int = typer.Option(64, help="episodes to collect, split evenly over the quality levels"),
    qualities: str = typer.Option("1,100,1000,10000", help="candidate counts N of Algorithm 1, comma-separated"),
    name: str = typer.Option("trajectories", help="collection name (staging folder and dataset name)"),
    workers: int = typer.Option(2, help="parallel env workers"),
    backend: str = typer.Option("process", help="process | ray"),
    seed: int = typer.Option(0, help="seed of the trajectory plan"),
    publish: bool = typer.Option(True, help="publish the Minari dataset when every episode is staged"),
    overwrite: bool = typer.Option(False, help="replace an existing Minari dataset of the same id"),
    data_dir: Optional[Path] = DataDirOpt,
    cache_dir: Optional[Path] = CacheDirOpt,
) -> None:
    """Collect trajectories planned by Algorithm 1 through DataMix-v0 (resumable), then publish them to Minari."""
    from datasets_builder.collection import collect
    from dmix_gym.scenario import make_scenario

    levels = tuple(int(q) for q in qualities.split(","))
    started = time.perf_counter()
    folder = collect(make_scenario(scenario, preset), name=name, total=trajectories, qualities=levels, workers=workers,
                     backend=backend, data_dir=str(data_dir) if data_dir else None,
                     cache_dir=str(cache_dir) if cache_dir else None, seed=seed)
    console.print(f"staged {trajectories} episodes in {folder} ({time.perf_counter() - started:.0f} s this run)")
    if publish:
        publish_cmd(scenario=scenario, preset=preset, name=name, overwrite=overwrite, partial=False, cache_dir=cache_dir)


@app.command("publish")
def publish_cmd(
    scenario: str = ScenarioOpt,
    preset: str = PresetOpt,
    name: str = typer.Option("trajectories", help="collection name"),
    overwrite: bool = typer.Option(False, help="replace an existing Minari dataset of the same id"),
    partial: bool = typer.Option(False, help="publish even if planned episodes are still missing"),
    cache_dir: Optional[Path] = CacheDirOpt,
) -> None:
    """Publish a staged collection as a local Minari dataset and print its summary."""
    import numpy as np

    from datasets_builder.collection import staging_dir
    from datasets_builder.publish import dmix_metadata, publish
    from dmix_gym.scenario import make_scenario

    folder = staging_dir(make_scenario(scenario, preset).name, name, cache_dir)
    dataset = publish(folder, name=name, overwrite=overwrite, partial=partial)
    meta = dmix_metadata(dataset)
    table = Table(title=f"{dataset.spec.dataset_id}: {dataset.total_episodes} episodes, {dataset.total_steps} transitions")
    for column in ["quality N", "episodes", "mean return", "std"]:
        table.add_column(column, justify="right")
    returns = np.array([float(np.sum(e.rewards)) for e in dataset.iterate_episodes()])
    quality = np.array(meta["episode_quality"])
    for n in sorted(set(quality)):
        r = returns[quality == n]
        table.add_row(str(n), str(len(r)), f"{r.mean():+.4f}", f"{r.std():.4f}")
    console.print(table)


@app.command("run")
def run(
    scenario: str = ScenarioOpt,
    preset: str = typer.Option("smoke", help="scale preset: smoke | cpu | paper"),
    trajectories: int = typer.Option(16, help="episodes to collect for the dataset"),
    workers: int = typer.Option(2, help="parallel env workers"),
    data_dir: Optional[Path] = DataDirOpt,
    cache_dir: Optional[Path] = CacheDirOpt,
) -> None:
    """The main job on the default data: build the data, run an episode, collect trajectories and publish them to Minari."""
    console.rule("[bold]1/3 data")
    data_build(scenario=scenario, preset=preset, data_dir=data_dir, cache_dir=cache_dir, force=False)
    console.rule("[bold]2/3 environment")
    env_episode(scenario=scenario, preset=preset, mixture="0.5", seed=0, device="auto", data_dir=data_dir,
                cache_dir=cache_dir, plot=None)
    console.rule("[bold]3/3 trajectories -> Minari")
    collect_cmd(scenario=scenario, preset=preset, trajectories=trajectories, qualities="1,100,1000,10000", name="trajectories",
                workers=workers, backend="process", seed=0, publish=True, overwrite=True, data_dir=data_dir,
                cache_dir=cache_dir)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
