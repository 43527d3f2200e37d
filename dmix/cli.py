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
agents_app = typer.Typer(help="Train the Data Mixing Agent (SFT, CQL via d3rlpy) and roll out any policy.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(env_app, name="env")
app.add_typer(agents_app, name="agents")
leaderboard_app = typer.Typer(help="Run policies through the evaluation protocol and rank them.", no_args_is_help=True)
app.add_typer(leaderboard_app, name="leaderboard")
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
    cql_steps: int = typer.Option(300, help="CQL gradient steps"),
    out: Path = typer.Option(Path("runs/main"), help="where the trained agents go"),
    protocol: str = typer.Option("dmix-bench-smoke-v0", help="leaderboard protocol the methods are ranked on"),
    data_dir: Optional[Path] = DataDirOpt,
    cache_dir: Optional[Path] = CacheDirOpt,
) -> None:
    """The whole pipeline on the default data: data, an episode, trajectories -> Minari, SFT + CQL agents, leaderboard."""
    from dmix_gym.scenario import make_scenario

    console.rule("[bold]1/5 data")
    data_build(scenario=scenario, preset=preset, data_dir=data_dir, cache_dir=cache_dir, force=False)
    console.rule("[bold]2/5 environment")
    env_episode(scenario=scenario, preset=preset, mixture="0.5", seed=0, device="auto", data_dir=data_dir,
                cache_dir=cache_dir, plot=None)
    console.rule("[bold]3/5 trajectories -> Minari")
    collect_cmd(scenario=scenario, preset=preset, trajectories=trajectories, qualities="1,100,1000,10000", name="trajectories",
                workers=workers, backend="process", seed=0, publish=True, overwrite=True, data_dir=data_dir,
                cache_dir=cache_dir)
    console.rule("[bold]4/5 agents: SFT warm-up, then CQL through d3rlpy")
    from datasets_builder.publish import dataset_id

    steps = make_scenario(scenario, preset).train.max_steps
    agents_train(dataset=dataset_id(make_scenario(scenario, preset).name, "trajectories"), algo="cql", out=out,
                 window=min(16, steps), d_model=256 if preset != "smoke" else 64, layers=2, epochs=150, quality=10000,
                 steps=cql_steps, seed=0, progress=True)
    console.rule(f"[bold]5/5 leaderboard {protocol}: agents and baselines on held-out tasks")
    from leaderboard.store import Store
    from leaderboard.submit import compute_references, default_db, submit

    store_path = default_db(cache_dir)
    compute_references(_protocol(protocol), Store(store_path), data_dir, cache_dir)
    entries = [("agent-sft", str(out / "sft.pt")), ("agent-cql", str(out / "cql.pt"))]
    entries += [(name, f"baseline:{name}") for name in ("naive", "uniform", "start-state", "regmix", "dbl")]
    for name, spec in entries:
        status = submit(spec, name, protocol, store_path, data_dir, cache_dir, workers=1)
        console.print(f"{name}: {status}")
    _print_table(protocol, store_path)


@agents_app.command("train")
def agents_train(
    dataset: str = typer.Option(..., help="Minari dataset id, e.g. dmix/general-math-cpu/trajectories-v0"),
    algo: str = typer.Option("cql", help="sft | cql (cql starts from <out>/sft.pt, training it first if missing)"),
    out: Path = typer.Option(..., help="output folder: sft.pt / cql.pt, metrics, checkpoints (a re-run resumes)"),
    window: int = typer.Option(16, help="state tokens the agent reads"),
    d_model: int = typer.Option(256, help="agent width"),
    layers: int = typer.Option(2, help="agent Transformer layers"),
    epochs: int = typer.Option(150, help="SFT epochs"),
    quality: int = typer.Option(10000, help="SFT imitates the episodes of this Algorithm 1 quality N"),
    steps: int = typer.Option(1500, help="CQL gradient steps"),
    seed: int = typer.Option(0, help="seed of SFT and CQL"),
    progress: bool = typer.Option(True, help="progress bars"),
) -> None:
    """Train the Data Mixing Agent on a dmix Minari dataset; print where the saved policy is."""
    from agents.agent import TransformerAgent
    from agents.networks import AgentConfig, count_parameters
    from agents.offline import load_offline
    from agents.sft import SFTConfig, train_sft

    if algo not in ("sft", "cql"):
        raise typer.BadParameter(f"algo must be 'sft' or 'cql', got {algo!r}")
    data = load_offline(dataset, window)
    agent_config = AgentConfig(window=window, d_model=d_model, layers=layers, ffn=4 * d_model)
    console.print(f"{dataset}: {len(data)} transitions, {len(set(data.episode.tolist()))} episodes, "
                  f"{len(data.domains)} domains, {len(data.fields)} fields")
    sft_path = Path(out) / "sft.pt"
    if algo == "sft" or not sft_path.exists():
        agent, metrics = train_sft(data, out, agent_config, SFTConfig(quality=quality, epochs=epochs, seed=seed), progress)
        console.print(f"SFT: {count_parameters(agent.net):,} parameters, {metrics['seconds']:.0f} s, best validation MSE "
                      f"{metrics['best_val_mse']:.2e} at epoch {metrics['best_epoch']} -> [bold]{sft_path}[/]")
    if algo == "cql":
        from agents.cql import CQLSettings, train_cql

        agent, metrics, _ = train_cql(data, out, TransformerAgent.load(sft_path), CQLSettings(steps=steps, seed=seed), progress)
        final = metrics["final"] or {}
        console.print(f"CQL: {metrics['seconds']:.0f} s, critic loss {final.get('critic_loss', float('nan')):.3f}, "
                      f"actor loss {final.get('actor_loss', float('nan')):.3f} -> [bold]{Path(out) / 'cql.pt'}[/]")


@agents_app.command("rollout")
def agents_rollout(
    policy: str = typer.Option(..., help="saved agent (.pt), saved baseline (.json) or baseline:naive|uniform|start-state|regmix|dbl"),
    scenario: str = ScenarioOpt,
    preset: str = PresetOpt,
    seed: int = typer.Option(0, help="episode seed"),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    plot: Optional[Path] = typer.Option(None, help="PNG of the mixture over time (default: rollout-<policy>-<preset>-seed<seed>.png)"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="also write the episode summary as JSON here"),
    data_dir: Optional[Path] = DataDirOpt,
    cache_dir: Optional[Path] = CacheDirOpt,
) -> None:
    """Run a policy for one DataMix-v0 episode; print its trajectory and final feedback; save the mixture plot."""
    import gymnasium as gym
    import numpy as np

    import dmix_gym  # noqa: F401
    from agents import load_policy, rollout
    from datasets_builder.atomic import write_json
    from dmix_gym.render import mixture_area_plot

    agent = load_policy(policy)
    env = gym.make("DataMix-v0", scenario=scenario, preset=preset, device=device, data_dir=data_dir, cache_dir=cache_dir)
    episode = rollout(agent, env, seed=seed, progress=True)
    space = env.unwrapped.domain_space
    target = np.array([space.fields[f] in space.target_fields for f in space.field_of])
    table = Table(title=f"{agent.name} on {env.unwrapped.scenario.name}, seed {seed}")
    for column in ["step", "target share", "top domain", *[f"f({f})" for f in episode.fields], "reward"]:
        table.add_column(column, justify="right")
    for t, (p, f) in enumerate(zip(episode.mixtures, episode.feedback)):
        top = int(np.argmax(p))
        table.add_row(str(t), f"{p[target].sum():.3f}", f"{space.names[top]} {p[top]:.2f}", *[f"{v:.4f}" for v in f],
                      f"{episode.rewards[t - 1]:+.4f}" if t else "")
    console.print(table)
    summary = episode.summary()
    console.print(f"return {episode.episode_return:+.4f}; final feedback "
                  + ", ".join(f"{k}={v:.4f}" for k, v in summary["final_feedback"].items())
                  + f"; {summary['tokens']:,} tokens in {episode.seconds:.1f} s")
    stem = Path(policy).stem if not policy.startswith("baseline:") else policy.replace(":", "-")
    plot = plot or Path(f"rollout-{stem}-{preset}-seed{seed}.png")
    from PIL import Image

    Image.fromarray(mixture_area_plot(episode.mixtures, episode.domains, title=f"{agent.name}, {env.unwrapped.scenario.name}, seed {seed}")).save(plot)
    console.print(f"plot: {plot}")
    if json_out:
        write_json(json_out, {**summary, "mixtures": episode.mixtures.tolist(), "feedback": episode.feedback.tolist(),
                              "rewards": episode.rewards.tolist()})



@agents_app.command("compare")
def agents_compare(
    policies: str = typer.Option("baseline:naive,baseline:uniform,baseline:start-state,baseline:dbl,baseline:regmix",
                                 help="comma-separated policies (saved files or baseline:<name>)"),
    scenario: str = ScenarioOpt,
    preset: str = PresetOpt,
    seeds: str = typer.Option("0", help="comma-separated episode seeds"),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    data_dir: Optional[Path] = DataDirOpt,
    cache_dir: Optional[Path] = CacheDirOpt,
) -> None:
    """Roll several policies out in the same env and print their mean return and final feedback side by side."""
    import gymnasium as gym
    import numpy as np

    import dmix_gym  # noqa: F401
    from agents import load_policy, rollout

    env = gym.make("DataMix-v0", scenario=scenario, preset=preset, device=device, data_dir=data_dir, cache_dir=cache_dir)
    space = env.unwrapped.domain_space
    source = np.asarray(space.field_of) == 0
    table = Table(title=f"{env.unwrapped.scenario.name}: seeds {seeds}")
    for column in ["policy", "return", *[f"final f({f})" for f in space.fields], "source tokens", "seconds"]:
        table.add_column(column, justify="right")
    for spec in [p.strip() for p in policies.split(",") if p.strip()]:
        policy = load_policy(spec)
        episodes = [rollout(policy, env, seed=int(seed), progress=True) for seed in seeds.split(",")]
        returns = np.array([e.episode_return for e in episodes])
        final = np.mean([e.final_feedback for e in episodes], axis=0)
        table.add_row(policy.name if spec.startswith("baseline:") else f"{policy.name} ({spec})",
                      f"{returns.mean():+.4f} ± {returns.std():.4f}", *[f"{v:.4f}" for v in final],
                      f"{np.mean([e.tokens[:, source].sum() for e in episodes]):,.0f}",
                      f"{np.mean([e.seconds for e in episodes]):.1f}")
    console.print(table)


ProtocolOpt = typer.Option("dmix-bench-v0", help="protocol version: dmix-bench-v0 (cpu) | dmix-bench-smoke-v0")
DbOpt = typer.Option(None, help="results database (default: <cache>/leaderboard.sqlite)")


@leaderboard_app.command("submit")
def leaderboard_submit(
    policy: str = typer.Option(..., help="package.module:factory, a saved policy file, or baseline:<name>"),
    name: str = typer.Option(..., help="the submission's name in the table (re-using it replaces that entry)"),
    protocol: str = ProtocolOpt,
    workers: int = typer.Option(1, help="episodes run in parallel processes"),
    db: Optional[Path] = DbOpt,
    data_dir: Optional[Path] = DataDirOpt,
    cache_dir: Optional[Path] = CacheDirOpt,
) -> None:
    """Run a policy through every task and seed of the protocol (resumable) and store its results."""
    from leaderboard.submit import compute_references, default_db, submit
    from leaderboard.store import Store

    store_path = db or default_db(cache_dir)
    compute_references(_protocol(protocol), Store(store_path), data_dir, cache_dir, workers=workers)
    status = submit(policy, name, protocol, store_path, data_dir, cache_dir, workers)
    console.print(f"{name}: [bold]{status}[/]")
    _print_table(protocol, store_path)
    if status != "done":
        raise typer.Exit(1)


@leaderboard_app.command("show")
def leaderboard_show(
    protocol: str = ProtocolOpt,
    db: Optional[Path] = DbOpt,
    cache_dir: Optional[Path] = CacheDirOpt,
    as_markdown: bool = typer.Option(False, "--markdown", help="print a Markdown table (for a README) instead"),
) -> None:
    """Print the ranked table of a protocol."""
    from leaderboard.submit import default_db

    _print_table(protocol, db or default_db(cache_dir), as_markdown)


def _print_table(protocol: str, db: Path, as_markdown: bool = False) -> None:
    """The ranked table of a protocol's results in `db` (what show, submit and run print)."""
    from leaderboard.store import Store
    from leaderboard.table import markdown, ranked, table_cells

    spec = _protocol(protocol)
    rows = ranked(Store(db), protocol)
    tasks = [t.name for t in spec.tasks]
    if as_markdown:
        print(markdown(rows, tasks), end="")
        return
    header, cells = table_cells(rows, tasks)
    table = Table(title=f"{protocol}: normalised score (0 = random mixtures, 100 = best static target share), mean ± std "
                        "over seeds; * = balanced score (the task's references do not normalise)")
    for column in header:
        table.add_column(column, justify="right")
    for row, line in zip(rows, cells):
        table.add_row(*line[:-1], row.status)  # a failure's reason is printed below the table
    console.print(table)
    for row in rows:
        if row.status == "failed":
            console.print(f"[red]{row.name} failed[/]: {row.reason}")


@leaderboard_app.command("report")
def leaderboard_report(
    out: Path = typer.Option(Path("runs/leaderboard"), help="folder for index.html and its PNG plots"),
    protocol: str = ProtocolOpt,
    db: Optional[Path] = DbOpt,
    cache_dir: Optional[Path] = CacheDirOpt,
) -> None:
    """Write a static HTML page with the ranked table and plots (scores, mixtures over time, feedback over time)."""
    from leaderboard.report import write_report
    from leaderboard.store import Store
    from leaderboard.submit import default_db

    _protocol(protocol)
    path = write_report(Store(db or default_db(cache_dir)), protocol, out)
    console.print(f"report: {path}")


@app.command("cpt")
def cpt(
    policy: str = typer.Option("baseline:naive", help="the mixing policy: a saved agent (.pt), a baseline JSON or baseline:<name>"),
    model: str = typer.Option("proxy", help="proxy (the scenario's, from its base checkpoint) | llama-3b | a LlamaConfig "
                                            ".json | a Hugging Face model dir"),
    scenario: str = ScenarioOpt,
    preset: str = PresetOpt,
    tokens_per_step: Optional[int] = typer.Option(None, help="training tokens per re-weighting step (default: the scenario's)"),
    max_steps: Optional[int] = typer.Option(None, help="re-weighting steps at most (default: the scenario's)"),
    seed: int = typer.Option(0, help="episode seed: the data order"),
    out: Path = typer.Option(Path("runs/cpt"), help="checkpoints, metrics.jsonl and tensorboard/ (re-run to resume)"),
    dry_run: bool = typer.Option(False, help="instantiate the model on the meta device; print parameters and memory per GPU"),
    gpus: int = typer.Option(8, help="with --dry-run: GPUs to estimate memory for"),
    micro_batch: Optional[int] = typer.Option(None, help="with --dry-run: sequences per micro-batch (default: the scenario's)"),
    activation_checkpointing: bool = typer.Option(True, help="recompute each layer in backward"),
    device: str = typer.Option("auto", help="auto | cuda | cpu (gloo)"),
    data_dir: Optional[Path] = DataDirOpt,
    cache_dir: Optional[Path] = CacheDirOpt,
) -> None:
    """Continual pre-training driven by a policy, under FSDP: `torchrun --nproc-per-node N -m dmix cpt ...`."""
    import numpy as np

    from cpt.run import CPTConfig, run_cpt

    config = CPTConfig(policy, out, model, scenario, preset, tokens_per_step, max_steps, seed, data_dir, cache_dir, device,
                       activation_checkpointing)
    if dry_run:
        _cpt_dry_run(config, gpus, micro_batch)
        return
    records = run_cpt(config)
    import torch.distributed as dist

    if not dist.is_initialized() or dist.get_rank() == 0:
        table = Table(title=f"cpt {model} with {policy}: {len(records)} steps ({out / 'metrics.jsonl'})")
        for column in ["step", "mixture (top 3)", "reward", "train loss", "tok/s", *[f"f({f})" for f in ("source", "target")]]:
            table.add_column(column, justify="right")
        for r in records:
            top = sorted(enumerate(r["policy_mixture"]), key=lambda x: -x[1])[:3]
            table.add_row(str(r["step"]), " ".join(f"{i}:{p:.2f}" for i, p in top), f"{r['reward']:+.4f}", f"{r['train_loss']:.3f}",
                          f"{r['train_tokens_per_second']:,.0f}", f"{r['feedback'][0]:.3f}", f"{np.mean(r['feedback'][1:]):.3f}")
        console.print(table)
    if dist.is_initialized():
        dist.destroy_process_group()


def _cpt_dry_run(config, gpus: int, micro_batch: Optional[int]) -> None:
    from cpt.models import count_meta_parameters, memory_per_gpu, resolve_model

    scenario = config.make_scenario()
    data = scenario.data.preset
    seq_len = data.seq_len
    choice = resolve_model(config.model, data.vocab_size, seq_len)
    if choice.config is None:
        raise typer.BadParameter("--dry-run needs --model llama-3b, a LlamaConfig JSON or a model dir")
    params = count_meta_parameters(choice.config)
    mb = micro_batch or scenario.train.micro_batch
    table = Table(title=f"{choice.name}: {params:,} parameters ({params / 1e9:.2f}B), vocab {data.vocab_size}, "
                        f"{choice.config.num_hidden_layers} layers; FSDP, bf16 compute, micro-batch {mb} x {seq_len} tokens")
    for column in ["GPUs", "weights+grads+AdamW (GiB)", "gathered layers (GiB)", "activations (GiB)", "total per GPU (GiB)"]:
        table.add_column(column, justify="right")
    for n in sorted({1, 2, 4, 8, gpus}):
        m = memory_per_gpu(choice.config, params, n, mb, seq_len)
        table.add_row(str(n), f"{m.sharded_state_gib:.1f}", f"{m.gathered_layers_gib:.2f}", f"{m.activations_gib:.2f}",
                      f"{m.total_gib:.1f}")
    console.print(table)


def _protocol(version: str):
    from leaderboard.protocol import get_protocol

    try:
        return get_protocol(version)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error


def main() -> None:
    app()


if __name__ == "__main__":
    main()
