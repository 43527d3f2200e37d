"""The jobs behind the `dmix` command as plain functions: each stage, and the whole pipeline `dmix run` runs."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dmix_gym.errors import ConfigError

from .views import console, peak_rss_mib, print_dataset_summary, print_episode_steps, print_leaderboard, print_manifest

PathLike = str | Path | None


def build(scenario: str, preset: str, data_dir: PathLike = None, cache_dir: PathLike = None, force: bool = False) -> None:
    """Build (or verify) a scenario's data at a preset and print its manifest."""
    from dmix_gym.data import build_data, load_data_spec

    spec = load_data_spec(scenario, preset)
    started = time.perf_counter()
    shards = build_data(spec, data_dir, cache_dir, force=force)
    console.print(f"[bold]{spec.name}[/] at preset [bold]{preset}[/]: {shards.root}")
    console.print(f"ready in {time.perf_counter() - started:.1f} s (build took {shards.manifest['build_seconds']} s), "
                  f"peak memory {peak_rss_mib():.0f} MiB")
    print_manifest(shards.manifest)


def fixed_mixture(base, mixture: str) -> np.ndarray:
    """`start` (p0), `target` (p*), `uniform`, or a target share s in [0, 1]: (1 - s) p0 + s p*."""
    named = {"start": base.p0, "target": base.p_star, "uniform": np.ones(base.num_domains) / base.num_domains}
    if mixture in named:
        return named[mixture]
    try:
        share = float(mixture)
    except ValueError:
        raise ConfigError(f"mixture {mixture!r} is not start, target, uniform or a target share in [0, 1]") from None
    if not 0 <= share <= 1:
        raise ConfigError(f"target share must be in [0, 1], got {share}")
    return (1 - share) * base.p0 + share * base.p_star


def fixed_mixture_episode(scenario: str, preset: str, mixture: str = "start", seed: int = 0, device: str = "auto",
                          data_dir: PathLike = None, cache_dir: PathLike = None, plot: PathLike = None) -> None:
    """One DataMix-v0 episode holding a fixed mixture; print each step, optionally save the mixture plot."""
    import gymnasium as gym

    import dmix_gym  # noqa: F401  (registers DataMix-v0)
    from dmix_gym.policy import Replay, rollout

    env = gym.make("DataMix-v0", scenario=scenario, preset=preset, device=device, data_dir=data_dir, cache_dir=cache_dir,
                   render_mode="rgb_array", timing=True)
    base = env.unwrapped
    episode = rollout(Replay(fixed_mixture(base, mixture), name=f"mixture {mixture}"), env, seed=seed)
    print_episode_steps(episode, f"{base.scenario.name}: episode with mixture {mixture!r}, seed {seed}")
    if plot:
        from PIL import Image

        Image.fromarray(env.render()).save(plot)
        console.print(f"plot: {plot}")


def publish_collection(scenario: str, preset: str, name: str = "trajectories", overwrite: bool = False,
                       partial: bool = False, cache_dir: PathLike = None) -> None:
    """Publish a staged collection as a local Minari dataset and print its summary."""
    from datasets_builder.collection import staging_dir
    from datasets_builder.publish import publish
    from dmix_gym.scenario import make_scenario

    folder = staging_dir(make_scenario(scenario, preset).name, name, cache_dir)
    print_dataset_summary(publish(folder, name=name, overwrite=overwrite, partial=partial))


def estimate_start(scenario: str, preset: str, samples: int = 256, seed: int = 0, data_dir: PathLike = None,
                   cache_dir: PathLike = None, device: str = "auto") -> dict:
    """Estimate p_0 from the base checkpoint's samples; print it beside the corpus's and where it was written."""
    import gymnasium as gym

    import dmix_gym  # noqa: F401  (registers DataMix-v0)
    from dmix_gym.start_state import estimate_path
    from dmix_gym.start_state import estimate_start as estimate

    env = gym.make("DataMix-v0", scenario=scenario, preset=preset, device=device, data_dir=data_dir, cache_dir=cache_dir)
    base = env.unwrapped
    base.backend.model.load_state_dict(base.backend.start_state)
    result = estimate(base.backend.model, base.shards, samples, seed, cache_dir=cache_dir)
    space = base.domain_space
    top = sorted((i for i in range(space.size) if space.field_of[i] == 0), key=lambda i: -space.p0[i])[:5]
    for i in top:
        console.print(f"{space.names[i]:>32}  corpus {space.p0[i]:.3f}  estimated {result['p0'][i]:.3f}")
    console.print(f"KL(corpus || estimate) = {result['kl']:.4f} nats from {samples} samples in {result['seconds']:.1f} s "
                  f"-> {estimate_path(base.shards, samples, seed, cache_dir)}")
    return result


@dataclass(frozen=True)
class CollectSettings:
    """What `dmix collect` collects: Algorithm 1's episodes at each quality level, optionally followed by noisy copies
    of a target-share schedule, in a scenario with `options` over its own (a regime, e.g. a scarce target corpus)."""

    scenario: str = "general-math"
    preset: str = "cpu"
    trajectories: int = 64  # Algorithm 1 episodes, split evenly over the quality levels
    qualities: tuple[int, ...] = (1, 100, 1000, 10000)  # candidate counts N of Algorithm 1
    name: str = "trajectories"  # the collection's (and dataset's) name
    workers: int = 2
    backend: str = "process"  # or "ray"
    seed: int = 0  # the trajectory plan's seed
    publish: bool = True  # publish the Minari dataset once every episode is staged
    overwrite: bool = False  # replace a published dataset of the same id
    vector: int | None = None  # proxies a worker trains at once (None: 16 on a GPU, 0 on a CPU)
    options: tuple[tuple[str, Any], ...] = ()  # scenario options, (key, value) pairs
    schedule: tuple[float, ...] = ()  # knots of a target-share schedule (`baselines.static.TargetSchedule`) ...
    schedule_episodes: int = 0  # ... whose noisy copies follow the Algorithm 1 episodes
    schedule_noise: float = 0.3  # log-normal noise on its shares (per episode and per step)
    behaviours: PathLike = None  # a JSON file of dataset v2's behaviour levels (`load_behaviours`), planned after them


def load_behaviours(path: PathLike, scenario, data_dir: PathLike = None, cache_dir: PathLike = None):
    """Dataset v2's behaviour levels from JSON: `{"dirichlet": {"0.3": 8, "3": 8}, "tilted": 8, "near": {"optimum":
    "domains:source=0.85,target/c01-frac-boxed=0.15"}, "near_episodes": 8, "noise": 0.3}`; a `near` mixture is a
    policy spec written out in full (`domains:`, `static:target-share=`) or a list of D weights, resolved on the
    scenario's domain space."""
    from baselines.domains import parse_domain_weights, resolve_domain_weights
    from datasets_builder.behaviours import BehaviourSpec
    from dmix_gym.data import build_data
    from dmix_gym.data.spec import read_json
    from dmix_gym.errors import MissingFileError

    file = Path(path)
    if not file.is_file():
        raise MissingFileError(f"no behaviours file {file}")
    data = read_json(file)  # a malformed file is one error naming it, the line and the column
    space = build_data(scenario.data, data_dir, cache_dir, progress=False).domain_space
    near = {}
    for name, value in data.get("near", {}).items():
        if isinstance(value, str) and value.startswith("static:target-share="):
            share = float(value.partition("=")[2])
            value = list((1 - share) * np.asarray(space.p0) + share * np.asarray(space.p_star))
        elif isinstance(value, str):
            value = list(resolve_domain_weights(parse_domain_weights(value), space))
        near[name] = tuple(float(v) for v in value)
    dirichlet = {float(a): int(n) for a, n in data.get("dirichlet", {}).items()}
    return BehaviourSpec(dirichlet, int(data.get("tilted", 0)), near, int(data.get("near_episodes", 0)),
                         float(data.get("noise", 0.3)))


def collect_trajectories(settings: CollectSettings, data_dir: PathLike = None, cache_dir: PathLike = None) -> None:
    """Collect trajectories through DataMix-v0 as `settings` say (resumable), then publish them to Minari."""
    from baselines.static import schedule_shares
    from datasets_builder.collection import collect
    from datasets_builder.trajectories import NoisySchedule
    from dmix_gym.scenario import make_scenario

    made = make_scenario(settings.scenario, settings.preset, **dict(settings.options))
    noisy = None
    if settings.schedule and not settings.schedule_episodes:
        raise ConfigError("--schedule needs --schedule-episodes N, the number of noisy copies to collect")
    if settings.schedule_episodes:
        if not settings.schedule:
            raise ConfigError("--schedule-episodes needs --schedule, the schedule's knots")
        noisy = NoisySchedule(schedule_shares(settings.schedule, made.train.max_steps), settings.schedule_episodes,
                              settings.schedule_noise)
    behaviours = None if settings.behaviours is None else load_behaviours(settings.behaviours, made, data_dir, cache_dir)
    started = time.perf_counter()
    folder = collect(made, name=settings.name, total=settings.trajectories, qualities=settings.qualities,
                     workers=settings.workers, backend=settings.backend, data_dir=str(data_dir) if data_dir else None,
                     cache_dir=str(cache_dir) if cache_dir else None, seed=settings.seed, vector=settings.vector,
                     schedule=noisy, behaviours=behaviours)
    extra = behaviours.episodes() if behaviours else 0
    console.print(f"staged {settings.trajectories + settings.schedule_episodes + extra} episodes in {folder} "
                  f"({time.perf_counter() - started:.0f} s this run)")
    if settings.publish:
        publish_collection(settings.scenario, settings.preset, settings.name, overwrite=settings.overwrite,
                           cache_dir=cache_dir)


def train_agent(dataset: str | list[str], algo: str, out: Path, window: int = 16, d_model: int = 256, layers: int = 2,
                epochs: int = 150, quality: int = 10000, steps: int = 1500, seed: int = 0, progress: bool = True,
                reward: str = "balanced", features: str = "absolute", sft_top: float | None = None,
                space: str = "fine", standardise_as: str | None = None) -> Path:
    """Train the Data Mixing Agent on a dmix Minari dataset, or several over one domain space (SFT, then an offline RL
    algorithm from it); return the saved policy's path. `standardise_as` (a protocol): standardise the feedback by the
    objective that protocol scores with, instead of by the first dataset's statistics."""
    from agents.agent import TransformerAgent
    from agents.networks import AgentConfig, count_parameters
    from agents.offline_data import load_offline
    from agents.offline_rl import ALGOS
    from agents.sft import SFTConfig, train_sft

    if algo not in ("sft", "dt", *ALGOS):
        raise ConfigError(f"unknown algorithm {algo!r}; choose one of sft, dt, {', '.join(ALGOS)}")
    standardise = None
    if standardise_as is not None:
        from leaderboard.official import ranking_objective
        from leaderboard.protocol import get_protocol

        objective = ranking_objective(get_protocol(standardise_as))
        standardise = (objective.mean, objective.std)
    data = load_offline(dataset, window, features, space=space, standardise=standardise)
    agent_config = AgentConfig(window=window, d_model=d_model, layers=layers, ffn=4 * d_model, features=features)
    console.print(f"{data.dataset_id}: {len(data)} transitions, {len(set(data.episode.tolist()))} episodes, "
                  f"{len(data.domains)} domains, {len(data.fields)} fields")
    if algo == "dt":
        from agents.decision_transformer import DTSettings, train_dt

        _, metrics = train_dt(data, out, DTSettings(steps=steps, context=window, seed=seed, reward=reward,
                                                                  features=features), progress)
        console.print(f"DT: {metrics['seconds']:.0f} s, target return {metrics['target_return']:+.3f} "
                      f"-> [bold]{Path(out) / 'dt.json'}[/]")
        return Path(out) / "dt.json"
    sft_path = Path(out) / "sft.pt"
    if algo == "sft" or not sft_path.exists():
        agent, metrics = train_sft(data, out, agent_config, SFTConfig(quality=quality, top=sft_top, epochs=epochs, seed=seed),
                                   progress)
        chosen = ("no validation episodes, last epoch kept" if metrics["best_val_mse"] is None
                  else f"best validation MSE {metrics['best_val_mse']:.2e} at epoch {metrics['best_epoch']}")
        console.print(f"SFT: {count_parameters(agent.net):,} parameters, {metrics['seconds']:.0f} s, {chosen} -> [bold]{sft_path}[/]")
    if algo == "sft":
        return sft_path
    from agents.offline_rl import RLSettings, train_rl

    _, metrics, _ = train_rl(data, out, TransformerAgent.load(sft_path), RLSettings(algo, steps=steps, seed=seed, reward=reward), progress)
    final = metrics["final"] or {}
    losses = ", ".join(f"{k} {v:.3f}" for k, v in final.items() if k.endswith("loss"))
    console.print(f"{algo.upper()}: {metrics['seconds']:.0f} s, {losses} -> [bold]{Path(out) / f'{algo}.pt'}[/]")
    return Path(out) / f"{algo}.pt"


def guard_agent(agent_path: Path, dataset: str | list[str] | None, out: Path, space: str | None = None) -> Path:
    """Fit an agent's training-data support and save the guarded agent as a policy file; return its path.

    `dataset` defaults to the datasets the agent records it trained on, `space` to the one its domains show (one
    `<field>/all` domain per field: "source"). The data is read in the agent's own feedback units (its
    standardisation), since the guard compares the agent's state tokens with the support's."""
    from agents.agent import TransformerAgent
    from agents.offline_data import JOIN, load_offline
    from agents.support import SupportGuard, fit_support
    from dmix_gym.data.domains import source_space

    agent = TransformerAgent.load(agent_path)
    if not dataset:
        if not agent.meta.get("dataset"):
            raise ConfigError(f"{agent_path} does not record the datasets it trained on: pass them with --dataset")
        dataset = agent.meta["dataset"].split(JOIN)
    if space is None:
        space = "source" if agent.domain_space == source_space(agent.domain_space) else "fine"
    standardise = (agent.feedback_mean, agent.feedback_std)  # the units of the agent's state tokens
    data = load_offline(dataset, agent.config.window, agent.config.features, agent.config.target_left, space, standardise)
    if data.domain_space != agent.domain_space:
        raise ConfigError(f"{agent_path} acts in another domain space than {data.dataset_id!r} in the {space!r} space: "
                          "pass the datasets and --space it trained on")
    support = fit_support(data)
    path = SupportGuard(agent, support, str(agent_path)).save(out)
    inside = support.inside(data.windows[:, -1]).mean()
    console.print(f"support: {len(support.tokens)} states, radius {support.radius:.3f} ({inside:.1%} of the data's states "
                  f"inside), fallback target share {1 - support.fallback[np.asarray(data.domain_space.field_of) == 0].sum():.3f}"
                  f" -> [bold]{path}[/]")
    return path


def rollout_policy(spec: str, scenario: str, preset: str, seed: int = 0, device: str = "auto", plot: PathLike = None,
                   json_out: PathLike = None, data_dir: PathLike = None, cache_dir: PathLike = None) -> None:
    """One DataMix-v0 episode of a policy: print its trajectory and final feedback, save the mixture plot (and,
    with `json_out`, the episode as JSON)."""
    import gymnasium as gym
    from PIL import Image

    import dmix_gym  # noqa: F401
    from dmix_gym.policy import rollout
    from dmix_gym.render import mixture_area_plot
    from dmix_gym.utils.atomic import write_json
    from leaderboard.registry import load_policy

    from .views import print_policy_episode

    agent = load_policy(spec)
    env = gym.make("DataMix-v0", scenario=scenario, preset=preset, device=device, data_dir=data_dir, cache_dir=cache_dir)
    episode = rollout(agent, env, seed=seed, progress=True)
    space = env.unwrapped.domain_space
    target = np.array([space.fields[f] in space.target_fields for f in space.field_of])
    print_policy_episode(episode, target, f"{agent.name} on {env.unwrapped.scenario.name}, seed {seed}")
    stem = Path(spec).stem if not spec.startswith("baseline:") else spec.replace(":", "-")
    plot = Path(plot or f"rollout-{stem}-{preset}-seed{seed}.png")
    title = f"{agent.name}, {env.unwrapped.scenario.name}, seed {seed}"
    Image.fromarray(mixture_area_plot(episode.mixtures, episode.domains, title=title)).save(plot)
    console.print(f"plot: {plot}")
    if json_out:
        write_json(json_out, {**episode.summary(), "mixtures": episode.mixtures.tolist(), "feedback": episode.feedback.tolist(),
                              "rewards": episode.rewards.tolist()})


def compare_policies(specs: list[str], scenario: str, preset: str, seeds: list[int], device: str = "auto",
                     data_dir: PathLike = None, cache_dir: PathLike = None) -> None:
    """Several policies rolled out in one env on the same seeds, their mean return and final feedback side by side."""
    import gymnasium as gym

    import dmix_gym  # noqa: F401
    from dmix_gym.policy import rollout
    from leaderboard.registry import load_policy

    from .views import print_policy_comparison

    env = gym.make("DataMix-v0", scenario=scenario, preset=preset, device=device, data_dir=data_dir, cache_dir=cache_dir)
    space = env.unwrapped.domain_space
    source = np.asarray(space.field_of) == 0
    results = []
    for spec in specs:
        policy = load_policy(spec)
        episodes = [rollout(policy, env, seed=seed, progress=True) for seed in seeds]
        label = policy.name if spec.startswith("baseline:") else f"{policy.name} ({spec})"
        results.append((label, np.array([e.episode_return for e in episodes]),
                        np.mean([e.final_feedback for e in episodes], axis=0),
                        float(np.mean([e.tokens[:, source].sum() for e in episodes])),
                        float(np.mean([e.seconds for e in episodes]))))
    print_policy_comparison(f"{env.unwrapped.scenario.name}: seeds {','.join(map(str, seeds))}", space.fields, results)


def submit_to_leaderboard(policy: str, name: str, protocol, db: Path, workers: int = 1, data_dir: PathLike = None,
                          cache_dir: PathLike = None, vector: int | None = None) -> str:
    """Compute the protocol's missing references, run `policy` through it (resumable); return 'done' or 'failed'.

    `vector` K > 0: K episodes of a task at a time on a vector env (None: batched on a GPU only)."""
    from leaderboard.official import open_store
    from leaderboard.submit import compute_references, submit

    compute_references(protocol, open_store(db, protocol.version), data_dir, cache_dir, workers=workers, vector=vector)
    status = submit(policy, name, protocol, db, data_dir, cache_dir, workers, vector=vector)
    console.print(f"{name}: [bold]{status}[/]")
    return status


def run_pipeline(scenario: str = "general-math", preset: str = "smoke", trajectories: int = 16, workers: int = 2,
                 cql_steps: int = 300, out: Path = Path("runs/main"), protocol=None,
                 data_dir: PathLike = None, cache_dir: PathLike = None) -> None:
    """The whole pipeline on the default data: data, an episode, trajectories -> Minari, SFT + CQL agents, leaderboard."""
    from datasets_builder.publish import dataset_id
    from dmix_gym.scenario import make_scenario
    from leaderboard.protocol import DEFAULT_SMOKE_PROTOCOL, get_protocol
    from leaderboard.submit import default_db

    protocol = protocol or get_protocol(DEFAULT_SMOKE_PROTOCOL)  # resolved before an hour of work, not after
    console.rule("[bold]1/5 data")
    build(scenario, preset, data_dir, cache_dir)
    console.rule("[bold]2/5 environment")
    fixed_mixture_episode(scenario, preset, mixture="0.5", seed=0, data_dir=data_dir, cache_dir=cache_dir)
    console.rule("[bold]3/5 trajectories -> Minari")
    collect_trajectories(CollectSettings(scenario, preset, trajectories, workers=workers, overwrite=True), data_dir,
                         cache_dir)
    console.rule("[bold]4/5 agents: SFT warm-up, then CQL through d3rlpy")
    made = make_scenario(scenario, preset)
    train_agent(dataset_id(made.name, "trajectories"), "cql", out, window=min(16, made.train.max_steps),
                d_model=256 if preset != "smoke" else 64, steps=cql_steps)
    console.rule(f"[bold]5/5 leaderboard {protocol.version}: agents and baselines on held-out tasks")
    db = default_db(cache_dir)
    entries = [("agent-sft", str(out / "sft.pt")), ("agent-cql", str(out / "cql.pt"))]
    entries += [(name, f"baseline:{name}") for name in ("naive", "uniform", "start-state", "regmix", "dbl")]
    for name, spec in entries:
        submit_to_leaderboard(spec, name, protocol, db, 1, data_dir, cache_dir)
    print_leaderboard(protocol, db)


@dataclass(frozen=True)
class SearchSettings:
    """What `dmix search` searches, and how long (see `leaderboard.recommend`)."""

    scenario: str = "general-math"
    preset: str = "cpu"
    model: PathLike = None  # a Hugging Face model directory trained instead of the proxy
    options: tuple[str, ...] = ()  # scenario options, KEY=VALUE
    out: PathLike = None  # results folder (default: runs/search/<scenario>)
    budget: int | None = None  # episodes at most
    objective: str | None = None  # a protocol whose objective is maximised (None: the scenario's own reward)
    schedules: bool = True
    domains: bool = True
    search_seeds: int = 2
    confirm_seeds: int = 5
    workers: int = 1


def search_scenario(settings: SearchSettings, data_dir: PathLike = None, cache_dir: PathLike = None) -> tuple[dict, Path]:
    """Search (or resume) a scenario's best static mixture and schedule; return the result and its folder."""
    from dataclasses import replace

    from dmix_gym.scenario import parse_options
    from leaderboard.protocol import SearchConfig, shipped_objective
    from leaderboard.recommend import search_mixture, search_task

    objective = None if settings.objective is None else shipped_objective(settings.objective)
    task = search_task(settings.scenario, settings.preset, settings.model, parse_options(list(settings.options)), objective)
    config = replace(SearchConfig(), domains=settings.domains, search_seeds=settings.search_seeds,
                     confirm_seeds=settings.confirm_seeds)
    folder = Path(settings.out or Path("runs/search") / task.name)
    result = search_mixture(task, folder, config, settings.schedules, settings.workers, settings.budget, data_dir, cache_dir)
    return result, folder
