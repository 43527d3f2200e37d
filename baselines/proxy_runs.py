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

import numpy as np

from datasets_builder.collection import Plan, episode_path, load_episode, load_or_write_plan, run_plan, staging_dir
from datasets_builder.trajectories import PlannedEpisode
from dmix_gym.scenario import override
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


def run_proxies(env, mixtures: np.ndarray, proxy_steps: int, seed: int, tag: str, workers: int = 2,
                progress: bool = True) -> ProxyRuns:
    """Run (or read the staged) proxy episodes of `proxy_steps` steps, one per mixture, in the env's scenario."""
    base = env.unwrapped
    proxy = override(base.scenario, max_steps=proxy_steps)
    scenario = json.loads(proxy.to_json())
    mixtures = np.asarray(mixtures, np.float32)
    identity = {"mixtures": mixtures.tolist(), "seed": seed, "scenario": scenario, "build": base.shards.build_id, "version": 1}
    name = f"{tag}-{stable_hash(identity)[:10]}"
    folder = staging_dir(proxy.name, name, base.cache_dir)
    episodes = tuple(PlannedEpisode(i, 0, seed * 100_003 + i, np.repeat(m[None], proxy_steps, 0)) for i, m in enumerate(mixtures))
    plan = load_or_write_plan(folder, scenario, len(episodes), lambda: Plan(scenario, name, episodes))
    started = time.perf_counter()
    run_plan(folder, plan, len(episodes), workers, "process", base.data_dir, base.cache_dir, progress)
    wall = time.perf_counter() - started
    feedback, tokens, seconds = [], 0, 0.0
    for planned in plan.episodes:
        arrays = load_episode(episode_path(folder, planned.index))
        feedback.append(arrays["info/feedback"][-1])
        tokens += int(arrays["info/tokens"].sum())
        seconds += float(arrays.get("info/train_seconds", np.zeros(1)).sum() + arrays.get("info/eval_seconds", np.zeros(1)).sum())
    return ProxyRuns(np.stack([p.actions[0] for p in plan.episodes]).astype(np.float64), np.asarray(feedback, np.float64),
                     tokens, seconds, wall, folder)
