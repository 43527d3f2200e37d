"""Offline RL through d3rlpy behind the Data Mixing Agent's body: CQL (paper eq. 5, C.4), IQL, TD3+BC and BC.

Every algorithm is d3rlpy's own; the agent's Transformer body plugs in as the actor's encoder
(`AgentEncoderFactory`) and a 1-layer Transformer over the state window plus an action token as the
critic's (`CriticEncoderFactory`; without the action token it is IQL's value function). Observations
are the agent's state windows, flattened; actions are mixtures mapped into d3rlpy's tanh box by
`agents.features.to_unit` (and back by `from_unit`). The actor's pre-tanh mean is the agent's
logits / `action_scale`, so the SFT agent initialises it exactly and the trained actor converts back
into a `TransformerAgent`.

| algo | d3rlpy | actor | critic |
| --- | --- | --- | --- |
| `cql` | `CQL` | squashed Gaussian | Q ensemble, conservative penalty |
| `iql` | `IQL` | Gaussian, advantage-weighted regression | Q ensemble + expectile value |
| `td3bc` | `TD3PlusBC` | deterministic, Q + BC term | Q ensemble |
| `bc` | `BC` | deterministic, MSE on logged actions | none |

Resumable: after every epoch the d3rlpy model (networks and optimisers) is written atomically to
`<out>/<algo>-checkpoint.d3` with the step count in `<out>/<algo>-state.json`; a re-run with the same
settings loads it and trains the remaining steps. d3rlpy's own metric CSVs go to `<out>/d3rlpy_logs/`.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import structlog
import torch

from dmix_gym.errors import ConfigError
from dmix_gym.utils.atomic import atomic_path, write_json

from . import features
from .agent import FORMAT, TransformerAgent, device_label
from .features import to_unit
from .finished import finished_metrics
from .networks import MixingNet, StateActionEncoder, WindowEncoder
from .offline_data import OfflineData

with contextlib.redirect_stderr(io.StringIO()):  # gym, a d3rlpy dependency, prints an "unmaintained" banner on import
    import gym  # noqa: F401
try:
    import d3rlpy
    from d3rlpy.models.encoders import EncoderFactory, register_encoder_factory
    from d3rlpy.models.torch import Encoder, EncoderWithAction
    from d3rlpy.optimizers import AdamFactory
    from d3rlpy.optimizers.lr_schedulers import WarmupSchedulerFactory
except ImportError as error:  # pragma: no cover - d3rlpy is a core dependency
    raise ImportError("agents.offline_rl needs d3rlpy: pip install 'd3rlpy>=2.8.1,<2.9'") from error

# d3rlpy logs every detail of a fit (and benign warnings) itself; dmix shows its own progress. DMIX_VERBOSE=1 brings them back.
if not os.environ.get("DMIX_VERBOSE"):
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))


class _AgentEncoder(Encoder):
    def __init__(self, body: WindowEncoder):
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class _CriticEncoder(EncoderWithAction):
    def __init__(self, body: StateActionEncoder):
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.body(x, action)


@dataclass()
class AgentEncoderFactory(EncoderFactory):
    """d3rlpy encoder factory for the agent's Transformer body (the actor)."""

    token_dim: int = 18
    window: int = 16
    d_model: int = 256
    layers: int = 2
    heads: int = 4
    ffn: int = 1024

    def create(self, observation_shape) -> Encoder:
        return _AgentEncoder(WindowEncoder(self.token_dim, self.window, self.d_model, self.layers, self.heads, self.ffn))

    @staticmethod
    def get_type() -> str:
        return "dmix-agent"


@dataclass()
class CriticEncoderFactory(EncoderFactory):
    """d3rlpy encoder factory for the critic: a Transformer over the state window plus an action token."""

    token_dim: int = 18
    window: int = 16
    d_model: int = 64
    layers: int = 1
    heads: int = 4
    ffn: int = 256

    def create(self, observation_shape) -> Encoder:
        """The state-only variant: IQL's value function V(s)."""
        return _AgentEncoder(WindowEncoder(self.token_dim, self.window, self.d_model, self.layers, self.heads, self.ffn))

    def create_with_action(self, observation_shape, action_size: int, discrete_action: bool = False) -> EncoderWithAction:
        if discrete_action:
            raise ValueError("the dmix critic takes continuous (mixture) actions")
        return _CriticEncoder(StateActionEncoder(self.token_dim, self.window, action_size, self.d_model, self.layers,
                                                 self.heads, self.ffn))

    @staticmethod
    def get_type() -> str:
        return "dmix-critic"


register_encoder_factory(AgentEncoderFactory)
register_encoder_factory(CriticEncoderFactory)


ALGOS = ("cql", "iql", "td3bc", "bc")


@dataclass(frozen=True)
class RLSettings:
    algo: str = "cql"  # one of ALGOS
    steps: int = 1500
    steps_per_epoch: int = 250
    batch_size: int = 64
    actor_lr: float = 1e-4
    actor_warmup: int = 500  # the actor's learning rate ramps up from 0 while the fresh critic learns
    critic_lr: float = 3e-4
    gamma: float = 1.0  # the score is the undiscounted sum of rewards over a finite horizon (its last step is terminal)
    conservative_weight: float = 1.0  # CQL: alpha of eq. 5, fixed (alpha_lr = 0) as in CQL(H) with a constant weight
    alpha_lr: float = 0.0  # CQL: > 0 tunes alpha by d3rlpy's Lagrangian against alpha_threshold instead
    n_action_samples: int = 8  # CQL
    initial_temperature: float = 0.05  # CQL
    expectile: float = 0.7  # IQL (its paper's value for locomotion)
    weight_temp: float = 3.0  # IQL: inverse temperature of the advantage weights
    td3_alpha: float = 2.5  # TD3+BC: weight of Q against the BC term (its paper's value)
    reward: str = "balanced"  # what the critic learns: the leaderboard's balanced score or "env" (eq. 6); see agents.features
    reward_scale: float = 10.0  # per-step rewards are ~0.1; d3rlpy's defaults suit rewards of order 1
    action_scale: float = 4.0  # see agents.features
    initial_std: float = 0.1  # a Gaussian actor's starting pre-tanh std around the SFT mean
    critic_d_model: int = 64
    critic_ffn: int = 256
    seed: int = 0
    device: str = "auto"

    def __post_init__(self):
        if self.algo not in ALGOS:
            raise ConfigError(f"unknown offline RL algorithm {self.algo!r}; choose one of {', '.join(ALGOS)}")
        features.check_reward(self.reward)


def d3rlpy_dataset(data: OfflineData, settings: RLSettings):
    """The offline data as a d3rlpy MDPDataset: flat state windows, tanh-box actions, scaled rewards.

    Every episode's last step is marked terminal, a time-out included. DataMix-v0 truncates only at its horizon T
    and shows t/T in the state, so the horizon is part of the MDP: nothing follows step T, and its reward is all
    there is to learn there. (d3rlpy drops the last step of a time-out episode, which has no next state to
    bootstrap from: that was every episode's final reward.)
    """
    from d3rlpy.constants import ActionSpace
    from d3rlpy.dataset import MDPDataset

    return MDPDataset(
        observations=data.windows.reshape(len(data), -1),
        actions=to_unit(data.actions, settings.action_scale),
        rewards=(data.rewards_for(settings.reward) * settings.reward_scale).astype(np.float32),
        terminals=(data.terminals | data.timeouts).astype(np.float32),
        timeouts=np.zeros(len(data), np.float32),
        action_space=ActionSpace.CONTINUOUS,
    )


def d3rlpy_device(name: str) -> str | bool:
    """d3rlpy's device argument: 'auto' is the first GPU when there is one, else the CPU (False)."""
    return name if name != "auto" else ("cuda:0" if torch.cuda.is_available() else False)


def make_algo(agent: TransformerAgent, settings: RLSettings):
    """The d3rlpy algorithm `settings.algo`, its actor (and critic) encoders shaped like the agent."""
    cfg = agent.config
    token_dim = agent.net.body.token_dim
    device = d3rlpy_device(settings.device)
    actor = AgentEncoderFactory(token_dim, cfg.window, cfg.d_model, cfg.layers, cfg.heads, cfg.ffn)
    critic = CriticEncoderFactory(token_dim, cfg.window, settings.critic_d_model, ffn=settings.critic_ffn)
    warmup = AdamFactory(lr_scheduler_factory=WarmupSchedulerFactory(max(1, settings.actor_warmup)))
    common = dict(actor_encoder_factory=actor, critic_encoder_factory=critic, actor_optim_factory=warmup,
                  batch_size=settings.batch_size, actor_learning_rate=settings.actor_lr,
                  critic_learning_rate=settings.critic_lr, gamma=settings.gamma)
    if settings.algo == "cql":
        config = d3rlpy.algos.CQLConfig(**common, conservative_weight=settings.conservative_weight,
                                        alpha_learning_rate=settings.alpha_lr, n_action_samples=settings.n_action_samples,
                                        initial_temperature=settings.initial_temperature)
    elif settings.algo == "iql":
        config = d3rlpy.algos.IQLConfig(**common, value_encoder_factory=critic, expectile=settings.expectile,
                                        weight_temp=settings.weight_temp)
    elif settings.algo == "td3bc":
        config = d3rlpy.algos.TD3PlusBCConfig(**common, alpha=settings.td3_alpha)
    else:
        config = d3rlpy.algos.BCConfig(encoder_factory=actor, optim_factory=warmup, batch_size=settings.batch_size,
                                       learning_rate=settings.actor_lr, policy_type="deterministic")
    return config.create(device=device)


def _actor(algo):
    """d3rlpy's actor module: the policy (CQL, IQL, TD3+BC) or the imitator (BC)."""
    modules = algo.impl.modules
    return modules.policy if hasattr(modules, "policy") else modules.imitator


def _mean_head(actor) -> torch.nn.Linear:
    """The linear layer giving the actor's pre-tanh mean (a Gaussian's `_mu`, a deterministic policy's `_fc`)."""
    return actor._mu if hasattr(actor, "_mu") else actor._fc


def actor_from_agent(algo, agent: TransformerAgent, settings: RLSettings) -> None:
    """Copy the agent into d3rlpy's actor: body as the encoder, logits / action_scale as the pre-tanh mean; a target
    actor (TD3+BC's) starts as the same weights, as d3rlpy syncs it at build time from the random actor it replaces."""
    actor = _actor(algo)
    actor._encoder.body.load_state_dict(agent.net.body.state_dict())
    head = _mean_head(actor)
    with torch.no_grad():
        head.weight.copy_(agent.net.head.weight / settings.action_scale)
        head.bias.copy_(agent.net.head.bias / settings.action_scale)
        logstd = getattr(actor, "_logstd", None)
        if isinstance(logstd, torch.nn.Linear):
            logstd.weight.zero_()
            logstd.bias.fill_(float(np.log(settings.initial_std)))
        elif isinstance(logstd, torch.nn.Parameter):
            logstd.fill_(float(np.log(settings.initial_std)))
    target = getattr(algo.impl.modules, "targ_policy", None)
    if target is not None:
        from d3rlpy.torch_utility import hard_sync

        hard_sync(target, actor)


def agent_from_actor(algo, like: TransformerAgent, settings: RLSettings, name: str | None = None) -> TransformerAgent:
    """The d3rlpy actor's deterministic policy as a TransformerAgent (softmax(scale * mean) = its mixture)."""
    actor = _actor(algo)
    head = _mean_head(actor)
    net = MixingNet(like.net.num_domains, like.net.num_fields, like.config, like.net.num_targets)
    net.body.load_state_dict({k: v.cpu() for k, v in actor._encoder.body.state_dict().items()})
    with torch.no_grad():
        net.head.weight.copy_(head.weight.cpu() * settings.action_scale)
        net.head.bias.copy_(head.bias.cpu() * settings.action_scale)
    return TransformerAgent(net, like.domain_space, like.feedback_mean, like.feedback_std, name=name or settings.algo)


def q_values(algo, windows: np.ndarray, mixtures: np.ndarray, settings: RLSettings) -> np.ndarray:
    """The critic's Q(s, a) for state windows (N, W, F) and mixtures (N, D), in unscaled reward units (not for BC)."""
    flat = windows.reshape(len(windows), -1).astype(np.float32)
    return algo.predict_value(flat, to_unit(mixtures, settings.action_scale)) / settings.reward_scale


def _trained(algo, init: TransformerAgent, settings: RLSettings, data: OfflineData, seconds: float,
             steps: int) -> TransformerAgent:
    """The actor as an agent, with what it was trained on and for how long (SFT's time included)."""
    agent = agent_from_actor(algo, init, settings)
    agent.meta = {"algo": settings.algo, "steps": steps, "reward": settings.reward, "dataset": data.dataset_id, "scenario": data.scenario,
                  "init": init.meta.get("algo"), "train_seconds": round(seconds + init.meta.get("train_seconds", 0.0), 2),
                  "dataset_transitions": len(data), "device": device_label(d3rlpy_device(settings.device))}
    return agent


def snapshot_path(out: str | Path, algo: str, steps: int) -> Path:
    """Where `train_rl` keeps the actor after `steps` gradient steps (one per epoch), for model selection."""
    return Path(out) / f"{algo}-steps" / f"{steps}.pt"


def train_rl(data: OfflineData, out: str | Path, init: TransformerAgent, settings: RLSettings = RLSettings(),
             progress: bool = True) -> tuple[TransformerAgent, dict, object | None]:
    """Train (or finish training) `settings.algo` from `init` on every transition of `data`; save the actor as
    `<out>/<algo>.pt`, and after each epoch as `<out>/<algo>-steps/<steps>.pt` (the candidates model selection scores).

    Returns the trained agent, its metrics, and the d3rlpy algorithm object (for its critic). A run that finished in
    `out` with the same settings is read back, with None for the algorithm (its checkpoint may be gone).
    """
    from d3rlpy.logging import FileAdapterFactory

    if init.domains != data.domains:
        raise ConfigError(f"initial agent has domains {init.domains[:3]}..., the dataset {data.domains[:3]}...")
    data.expect_features(init.config.features, init.config.target_left, f"the initial agent {init.name!r}")
    out, name = Path(out), settings.algo
    out.mkdir(parents=True, exist_ok=True)
    settings_json = {name: asdict(settings), "agent": init.config.to_dict(), "dataset": data.dataset_id, "format": FORMAT}
    last = snapshot_path(out, name, settings.steps)
    finished = finished_metrics(out / f"{name}-metrics.json", settings_json, [last])
    if finished is not None:  # restored without its checkpoint, so without its critic
        final = out / f"{name}.pt"
        agent = TransformerAgent.load(final if final.is_file() else last)
        if not final.is_file():  # the store keeps the candidates; the final agent is the last of them
            agent.save(final)
        return agent, finished, None
    d3rlpy.seed(settings.seed)
    torch.manual_seed(settings.seed)
    dataset = d3rlpy_dataset(data, settings)
    algo = make_algo(init, settings)
    algo.build_with_dataset(dataset)

    checkpoint, state_file = out / f"{name}-checkpoint.d3", out / f"{name}-state.json"
    done, history, seconds = 0, [], 0.0
    if checkpoint.exists() and state_file.exists():
        state = json.loads(state_file.read_text())
        if state["settings"] != json.loads(json.dumps(settings_json)):
            raise ConfigError(f"{checkpoint} was written with other settings; remove it or use another --out")
        algo.load_model(str(checkpoint))
        done, history, seconds = state["steps"], state["history"], state["seconds"]
    else:
        actor_from_agent(algo, init, settings)

    remaining = settings.steps - done
    started = time.perf_counter()
    if remaining > 0:
        fitter = algo.fitter(dataset, n_steps=remaining, n_steps_per_epoch=min(settings.steps_per_epoch, remaining),
                            experiment_name=name, with_timestamp=False, show_progress=progress, save_interval=10**9,
                            logger_adapter=FileAdapterFactory(root_dir=str(out / "d3rlpy_logs")))
        for epoch, metrics in fitter:
            steps = done + min(epoch * settings.steps_per_epoch, remaining)
            history.append({"steps": steps, **{k: float(v) for k, v in metrics.items()}})
            with atomic_path(checkpoint, suffix=".d3") as tmp:
                algo.save_model(str(tmp))
            elapsed = seconds + time.perf_counter() - started
            _trained(algo, init, settings, data, elapsed, steps).save(snapshot_path(out, name, steps))
            write_json(state_file, {"settings": settings_json, "steps": steps, "history": history, "seconds": elapsed})
    seconds += time.perf_counter() - started

    agent = _trained(algo, init, settings, data, seconds, settings.steps)
    agent.save(out / f"{name}.pt")
    metrics = {**settings_json, "transitions": len(data), "seconds": round(seconds, 2),
               "final": history[-1] if history else None, "history": history}
    write_json(out / f"{name}-metrics.json", metrics)
    return agent, metrics, algo
