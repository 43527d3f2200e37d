"""Short proxy runs at fixed mixtures, the one-off work of the offline baselines (RegMix, Data Mixing Laws).

Each run is a DataMix-v0 episode of `proxy_steps` steps holding one mixture, run through the same
crash-safe staged runner as trajectory collection: every finished run is written atomically, and a
re-run (after a crash, or by another baseline with the same runs) reads what is there.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np

from datasets_builder.collection import Plan, episode_path, load_episode, load_or_write_plan, run_plan, staging_dir
from datasets_builder.trajectories import PlannedEpisode
from dmix_gym.errors import ConfigError
from dmix_gym.scenario import Scenario, override
from dmix_gym.utils.atomic import stable_hash


@dataclass(frozen=True)
class ProxyRuns:
    """What the runs measured: per run, its mixture and final feedback; in all, the compute they spent."""

    mixtures: np.ndarray  # (M, D)
    final_feedback: np.ndarray  # (M, K)
    tokens: int
    seconds: float  # train + eval time summed over runs
    wall_seconds: float  # this call's wall time (0 when every run was already staged)
    folder: Path

    def compute(self, proxy_steps: int) -> dict:
        return {"proxy_runs": len(self.mixtures), "proxy_steps": proxy_steps, "tokens": self.tokens,
                "proxy_seconds": round(self.seconds, 2), "wall_seconds_this_run": round(self.wall_seconds, 2)}


def narrower_proxy(scenario: Scenario, width: float) -> dict[str, int]:
    """The overrides of a proxy `width` times as wide as the scenario's (heads and SwiGLU width scaled, head size
    kept), as RegMix trains small proxies; {} where the scenario trains a Hugging Face model of the user's."""
    if not 0 < width <= 1:
        raise ConfigError(f"a proxy's width is a fraction of the scenario's in (0, 1], got {width}")
    if scenario.hf_model is not None:
        return {}
    model = scenario.model
    heads = max(1, round(model.num_heads * width))
    return {"num_heads": heads, "hidden_size": heads * (model.hidden_size // model.num_heads),
            "intermediate_size": max(8, round(model.intermediate_size * width))}


def run_proxies(env, mixtures: np.ndarray, proxy_steps: int, seed: int, tag: str, workers: int = 2,
                progress: bool = True, model: dict[str, int] | None = None) -> ProxyRuns:
    """Run (or read the staged) proxy episodes of `proxy_steps` steps, one per mixture, in the env's scenario (with
    its proxy's shape overridden by `model`, where given)."""
    base = env.unwrapped
    proxy = override(base.scenario, max_steps=proxy_steps, **(model or {}))
    scenario = json.loads(proxy.to_json())
    if model:  # another shape pre-trains its own base proxy: once, here, not in every worker at the same time
        gym.make("DataMix-v0", scenario=scenario, data_dir=base.data_dir, cache_dir=base.cache_dir, progress=progress).close()
    mixtures = np.asarray(mixtures, np.float32)
    identity = {"mixtures": mixtures.tolist(), "seed": seed, "scenario": scenario, "build": base.shards.build_id, "version": 1}
    name = f"{tag}-{stable_hash(identity)[:10]}"
    folder = staging_dir(proxy.name, name, base.cache_dir)
    episodes = tuple(PlannedEpisode(i, 0, seed * 100_003 + i, np.repeat(m[None], proxy_steps, 0)) for i, m in enumerate(mixtures))
    plan = load_or_write_plan(folder, scenario, len(episodes), lambda: Plan(scenario, name, episodes))
    started = time.perf_counter()
    run_plan(folder, plan, len(episodes), workers, "process", base.data_dir, base.cache_dir, progress)
    return read_proxy_runs(folder, wall_seconds=time.perf_counter() - started)


def read_proxy_runs(folder: Path, wall_seconds: float = 0.0) -> ProxyRuns:
    """The staged runs of `folder` (written by `run_proxies`) as the baselines read them: each run's planned mixture
    and final feedback, and the compute they spent. Every planned run must be staged."""
    folder = Path(folder)
    plan = Plan.from_json(json.loads((folder / "plan.json").read_text()))
    feedback, tokens, seconds = [], 0, 0.0
    for planned in plan.episodes:
        arrays = load_episode(episode_path(folder, planned.index))
        feedback.append(arrays["info/feedback"][-1])
        tokens += int(arrays["info/tokens"].sum())
        seconds += float(arrays.get("info/train_seconds", np.zeros(1)).sum() + arrays.get("info/eval_seconds", np.zeros(1)).sum())
    return ProxyRuns(np.stack([p.actions[0] for p in plan.episodes]).astype(np.float64), np.asarray(feedback, np.float64),
                     tokens, seconds, wall_seconds, folder)
