"""Decision Transformer (Chen et al. 2021) through d3rlpy: the logged episodes as return-conditioned sequences.

d3rlpy's `DecisionTransformer` reads, per step, the return still to come, the agent's state token
[p_t ; f̂_t ; t/T] (`agents.features`, the same token, with the same feedback features, the Data Mixing Agent reads) and the action,
over the last `context` steps, and predicts the next mixture. Acting, it is asked for a target return
(by default the best return logged in the dataset) and subtracts each reward as it arrives; a reward
is recomputed from the feedback in `info` with the weights of the reward it was trained on
(`agents.features.reward_weights`), since a policy sees the history, not the rewards. Actions live
in d3rlpy's tanh box (`agents.features.to_unit`).

Saved as `<out>/dt.d3` (d3rlpy's own format) beside `<out>/dt.json` (what the policy needs to read an
episode); `leaderboard.registry.load_policy("<out>/dt.json")` loads it. Training is resumable: the model is
written atomically after every epoch with the step count in `<out>/dt-state.json`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dmix_gym.data.domains import DomainSpace
from dmix_gym.errors import ConfigError, MissingFileError
from dmix_gym.policy import History, Policy, ScenarioInfo
from dmix_gym.scenario import Scenario
from dmix_gym.utils.atomic import atomic_path, write_json

from .agent import COMPUTE_KEYS, device_label
from .features import check_features, check_reward, from_unit, reward_weights, to_unit, tokens
from .finished import finished_metrics
from .offline_data import OfflineData
from .offline_rl import d3rlpy, d3rlpy_device  # d3rlpy imported quietly there

FORMAT = "dmix-dt/1"


@dataclass(frozen=True)
class DTSettings:
    steps: int = 2000
    steps_per_epoch: int = 500
    batch_size: int = 32
    learning_rate: float = 1e-4
    context: int = 16  # steps of history read, like the agent's window
    hidden: int = 128
    layers: int = 3
    heads: int = 1
    dropout: float = 0.1
    reward: str = "balanced"  # the return it is conditioned on: the balanced score's or "env" (eq. 6); see agents.features
    reward_scale: float = 10.0  # as the RL algorithms: per-step rewards are ~0.1
    action_scale: float = 4.0
    features: str = "absolute"  # how the state token carries the feedback (agents.features)
    target_left: bool = True  # the state token carries the target fields' fraction of data left (agents.features)
    target_return: float | None = None  # None: the best episode return in the dataset
    seed: int = 0
    device: str = "auto"

    def __post_init__(self):
        check_reward(self.reward)
        check_features(self.features)


def dt_dataset(data: OfflineData, settings: DTSettings):
    """Per-step state tokens, tanh-box actions, scaled rewards, as a d3rlpy MDPDataset of whole episodes."""
    from d3rlpy.constants import ActionSpace
    from d3rlpy.dataset import MDPDataset

    return MDPDataset(observations=data.windows[:, -1, :], actions=to_unit(data.actions, settings.action_scale),
                      rewards=(data.rewards_for(settings.reward) * settings.reward_scale).astype(np.float32),
                      terminals=data.terminals.astype(np.float32), timeouts=data.timeouts.astype(np.float32),
                      action_space=ActionSpace.CONTINUOUS)


def make_dt(settings: DTSettings, max_timestep: int):
    from d3rlpy.models.encoders import VectorEncoderFactory

    return d3rlpy.algos.DecisionTransformerConfig(
        batch_size=settings.batch_size, learning_rate=settings.learning_rate, context_size=settings.context,
        max_timestep=max_timestep, num_heads=settings.heads, num_layers=settings.layers,
        attn_dropout=settings.dropout, resid_dropout=settings.dropout, embed_dropout=settings.dropout,
        encoder_factory=VectorEncoderFactory(hidden_units=[settings.hidden]),
    ).create(device=d3rlpy_device(settings.device))


def episode_returns(data: OfflineData, reward: str) -> np.ndarray:
    rewards = data.rewards_for(reward)
    return np.array([rewards[data.episode == e].sum() for e in np.unique(data.episode)])


class DTAgent(Policy):
    """Acts with a trained d3rlpy DecisionTransformer, conditioned on a target return."""

    def __init__(self, algo, domain_space: DomainSpace, feedback_mean, feedback_std, settings: DTSettings,
                 target_return: float, name: str = "dt", meta: dict[str, Any] | None = None):
        self.algo, self.domain_space, self.settings = algo, domain_space, settings
        self.domains = domain_space.names
        self.feedback_mean = np.asarray(feedback_mean, np.float32)
        self.feedback_std = np.maximum(np.asarray(feedback_std, np.float32), 1e-6)
        self.target_return, self.name, self.meta = float(target_return), name, dict(meta or {})

    def reset(self, info: ScenarioInfo) -> None:
        from d3rlpy.algos import IdentityTransformerActionSampler

        if tuple(info.domain_space.names) != tuple(self.domains):
            raise ConfigError(f"DT agent {self.name!r} was trained on domains {list(self.domains)[:4]}..., the env has "
                              f"{list(info.domain_space.names)[:4]}...; roll it out with agents.rollout")
        super().reset(info)
        self.weights = reward_weights(self.settings.reward, Scenario.from_dict(info.scenario).weights(), self.feedback_std)
        self.wrapper = self.algo.as_stateful_wrapper(target_return=self.target_return * self.settings.reward_scale,
                                                     action_sampler=IdentityTransformerActionSampler())

    def act(self, history: History) -> np.ndarray:
        d, k = self.domain_space.size, len(self.domain_space.fields)
        token = tokens(history.stacked(), d, k, self.feedback_mean, self.feedback_std, self.settings.features,
                       self.settings.target_left)[-1]
        reward = 0.0
        if len(history) > 1:
            reward = float(self.weights @ (np.asarray(history.infos[-1]["feedback"]) - np.asarray(history.infos[-2]["feedback"])))
        action = self.wrapper.predict(token, reward * self.settings.reward_scale)
        p = from_unit(np.asarray(action, np.float64), self.settings.action_scale)
        return p / p.sum()

    def compute(self) -> dict[str, Any]:
        return {k: self.meta[k] for k in COMPUTE_KEYS if k in self.meta}

    def save(self, path: str | Path) -> Path:
        """`path` (.json) and the d3rlpy model beside it (.d3), each written atomically."""
        path = Path(path)
        model = path.with_suffix(".d3")
        with atomic_path(model, suffix=".d3") as tmp:
            self.algo.save(str(tmp))
        write_json(path, {"format": FORMAT, "policy": "dt", "name": self.name, "model": model.name,
                          "domain_space": self.domain_space.to_dict(), "feedback_mean": self.feedback_mean.tolist(),
                          "feedback_std": self.feedback_std.tolist(), "settings": asdict(self.settings),
                          "target_return": self.target_return, "meta": self.meta})
        return path

    @classmethod
    def load(cls, path: str | Path) -> "DTAgent":
        path = Path(path)
        saved = json.loads(path.read_text())
        if saved.get("format") != FORMAT:
            raise ConfigError(f"{path} is not a saved dmix DT agent (format {FORMAT})")
        model = path.parent / saved["model"]
        if not model.is_file():
            raise MissingFileError(f"{path} names the model {model}, which is not there")
        algo = d3rlpy.load_learnable(str(model), device=False)
        # A file written before the reward (features, target_left) setting was trained on eq. 6 (the feedback's level,
        # no data left).
        settings = DTSettings(**{"reward": "env", "features": "absolute", "target_left": False, **saved["settings"]})
        return cls(algo, DomainSpace.from_dict(saved["domain_space"]), saved["feedback_mean"], saved["feedback_std"],
                   settings, saved["target_return"], saved["name"], saved["meta"])


def train_dt(data: OfflineData, out: str | Path, settings: DTSettings = DTSettings(),
             progress: bool = True) -> tuple[DTAgent, dict]:
    """Train (or finish training) a Decision Transformer on every episode of `data`; save `<out>/dt.json` + `dt.d3`. A run
    that finished in `out` with the same settings is read back."""
    from d3rlpy.logging import NoopAdapterFactory

    data.expect_features(settings.features, settings.target_left, "the Decision Transformer")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    max_timestep = int(max(np.bincount(data.episode.astype(np.int64)))) + 2
    settings_json = {"dt": asdict(settings), "dataset": data.dataset_id, "format": FORMAT, "max_timestep": max_timestep}
    finished = finished_metrics(out / "dt-metrics.json", settings_json, [out / "dt.json", out / "dt.d3"])
    if finished is not None:
        return DTAgent.load(out / "dt.json"), finished
    d3rlpy.seed(settings.seed)
    torch.manual_seed(settings.seed)
    dataset = dt_dataset(data, settings)
    checkpoint, state_file = out / "dt-checkpoint.d3", out / "dt-state.json"
    done, seconds = 0, 0.0
    if checkpoint.exists() and state_file.exists():
        state = json.loads(state_file.read_text())
        if state["settings"] != json.loads(json.dumps(settings_json)):
            raise ConfigError(f"{checkpoint} was written with other settings; remove it or use another --out")
        algo = d3rlpy.load_learnable(str(checkpoint), device=d3rlpy_device(settings.device))
        done, seconds = state["steps"], state["seconds"]
    else:
        algo = make_dt(settings, max_timestep)
    started = time.perf_counter()
    while done < settings.steps:
        chunk = min(settings.steps_per_epoch, settings.steps - done)
        algo.fit(dataset, n_steps=chunk, n_steps_per_epoch=chunk, show_progress=progress, save_interval=10**9,
                 logger_adapter=NoopAdapterFactory())
        done += chunk
        with atomic_path(checkpoint, suffix=".d3") as tmp:
            algo.save(str(tmp))
        write_json(state_file, {"settings": settings_json, "steps": done,
                                "seconds": seconds + time.perf_counter() - started})
    seconds += time.perf_counter() - started
    returns = episode_returns(data, settings.reward)
    target = settings.target_return if settings.target_return is not None else float(returns.max())
    agent = DTAgent(algo, data.domain_space, data.feedback_mean, data.feedback_std, settings, target,
                    meta={"algo": "dt", "dataset": data.dataset_id, "scenario": data.scenario,
                          "train_seconds": round(seconds, 2), "dataset_transitions": len(data),
                          "device": device_label(d3rlpy_device(settings.device))})
    agent.save(out / "dt.json")
    metrics = {**settings_json, "transitions": len(data), "seconds": round(seconds, 2), "steps": done,
               "target_return": target, "best_logged_return": float(returns.max())}
    write_json(out / "dt-metrics.json", metrics)
    return agent, metrics
