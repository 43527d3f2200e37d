"""CQL through d3rlpy (paper eq. 5, C.4): the SFT agent is the actor, a 1-layer Transformer is the critic.

Both plug into d3rlpy as custom encoder factories (`AgentEncoderFactory`,
`CriticEncoderFactory`); the conservative penalty, the SAC-style actor update and the target
critics are d3rlpy's `CQL`. Observations are the agent's state windows, flattened; actions are
mixtures mapped into d3rlpy's tanh box by `agents.features.to_unit` (and back by `from_unit`).
The actor's pre-tanh mean is the agent's logits / `action_scale`, so the SFT agent initialises
it exactly and the trained actor converts back into a `TransformerAgent`.

Resumable: after every epoch the d3rlpy model (networks and optimisers) is written atomically to
`<out>/cql-checkpoint.d3` with the step count in `<out>/cql-state.json`; a re-run with the same
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
from .agent import FORMAT, TransformerAgent
from .features import to_unit
from .networks import MixingNet, StateActionEncoder, WindowEncoder
from .offline import OfflineData

with contextlib.redirect_stderr(io.StringIO()):  # gym, a d3rlpy dependency, prints an "unmaintained" banner on import
    import gym  # noqa: F401
try:
    import d3rlpy
    from d3rlpy.models.encoders import EncoderFactory, register_encoder_factory
    from d3rlpy.models.torch import Encoder, EncoderWithAction
    from d3rlpy.optimizers import AdamFactory
    from d3rlpy.optimizers.lr_schedulers import WarmupSchedulerFactory
except ImportError as error:  # pragma: no cover - d3rlpy is a core dependency
    raise ImportError("agents.cql needs d3rlpy: pip install 'd3rlpy>=2.8.1,<2.9'") from error

# d3rlpy logs every detail of a fit at info level; dmix shows its own progress. DMIX_VERBOSE=1 brings them back.
if not os.environ.get("DMIX_VERBOSE"):
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


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


@dataclass(frozen=True)
class CQLSettings:
    steps: int = 1500
    steps_per_epoch: int = 250
    batch_size: int = 64
    actor_lr: float = 1e-4
    actor_warmup: int = 500  # the actor's learning rate ramps up from 0 while the fresh critic learns
    critic_lr: float = 3e-4
    gamma: float = 0.95
    conservative_weight: float = 1.0  # alpha of eq. 5, fixed (alpha_lr = 0) as in CQL(H) with a constant weight
    alpha_lr: float = 0.0  # > 0: tune alpha by d3rlpy's Lagrangian against alpha_threshold instead
    n_action_samples: int = 8
    initial_temperature: float = 0.05
    reward_scale: float = 10.0  # per-step rewards are ~0.1; d3rlpy's defaults suit rewards of order 1
    action_scale: float = 4.0  # see agents.features
    initial_std: float = 0.1  # the actor's starting pre-tanh std around the SFT mean
    critic_d_model: int = 64
    critic_ffn: int = 256
    seed: int = 0
    device: str = "auto"


def d3rlpy_dataset(data: OfflineData, settings: CQLSettings):
    """The offline data as a d3rlpy MDPDataset: flat state windows, tanh-box actions, scaled rewards."""
    from d3rlpy.constants import ActionSpace
    from d3rlpy.dataset import MDPDataset

    return MDPDataset(
        observations=data.windows.reshape(len(data), -1),
        actions=to_unit(data.actions, settings.action_scale),
        rewards=(data.rewards * settings.reward_scale).astype(np.float32),
        terminals=data.terminals.astype(np.float32),
        timeouts=data.timeouts.astype(np.float32),
        action_space=ActionSpace.CONTINUOUS,
    )


def make_cql(agent: TransformerAgent, settings: CQLSettings):
    """A d3rlpy CQL whose actor and critic encoders have the agent's shape."""
    cfg = agent.config
    token_dim = features.token_dim(agent.net.num_domains, agent.net.num_fields)
    device = settings.device if settings.device != "auto" else ("cuda:0" if torch.cuda.is_available() else False)
    return d3rlpy.algos.CQLConfig(
        actor_encoder_factory=AgentEncoderFactory(token_dim, cfg.window, cfg.d_model, cfg.layers, cfg.heads, cfg.ffn),
        critic_encoder_factory=CriticEncoderFactory(token_dim, cfg.window, settings.critic_d_model, ffn=settings.critic_ffn),
        actor_optim_factory=AdamFactory(lr_scheduler_factory=WarmupSchedulerFactory(max(1, settings.actor_warmup))),
        batch_size=settings.batch_size, actor_learning_rate=settings.actor_lr, critic_learning_rate=settings.critic_lr,
        gamma=settings.gamma, conservative_weight=settings.conservative_weight, alpha_learning_rate=settings.alpha_lr,
        n_action_samples=settings.n_action_samples,
        initial_temperature=settings.initial_temperature,
    ).create(device=device)


def actor_from_agent(cql, agent: TransformerAgent, settings: CQLSettings) -> None:
    """Copy the agent into d3rlpy's actor: body as the encoder, logits / action_scale as the pre-tanh mean."""
    policy = cql.impl.modules.policy
    policy._encoder.body.load_state_dict(agent.net.body.state_dict())
    with torch.no_grad():
        policy._mu.weight.copy_(agent.net.head.weight / settings.action_scale)
        policy._mu.bias.copy_(agent.net.head.bias / settings.action_scale)
        policy._logstd.weight.zero_()
        policy._logstd.bias.fill_(float(np.log(settings.initial_std)))


def agent_from_actor(cql, like: TransformerAgent, settings: CQLSettings, name: str = "cql") -> TransformerAgent:
    """The d3rlpy actor's deterministic policy as a TransformerAgent (softmax(scale * mu) = its mixture)."""
    policy = cql.impl.modules.policy
    net = MixingNet(like.net.num_domains, like.net.num_fields, like.config)
    net.body.load_state_dict({k: v.cpu() for k, v in policy._encoder.body.state_dict().items()})
    with torch.no_grad():
        net.head.weight.copy_(policy._mu.weight.cpu() * settings.action_scale)
        net.head.bias.copy_(policy._mu.bias.cpu() * settings.action_scale)
    return TransformerAgent(net, like.domain_space, like.feedback_mean, like.feedback_std, name=name)


def q_values(cql, windows: np.ndarray, mixtures: np.ndarray, settings: CQLSettings) -> np.ndarray:
    """The critic's Q(s, a) for state windows (N, W, F) and mixtures (N, D), in unscaled reward units."""
    flat = windows.reshape(len(windows), -1).astype(np.float32)
    return cql.predict_value(flat, to_unit(mixtures, settings.action_scale)) / settings.reward_scale


def train_cql(data: OfflineData, out: str | Path, init: TransformerAgent, settings: CQLSettings = CQLSettings(),
              progress: bool = True) -> tuple[TransformerAgent, dict, object]:
    """Train (or finish training) CQL from `init` on every transition of `data`; save the actor as `<out>/cql.pt`.

    Returns the trained agent, its metrics, and the d3rlpy CQL object (for its critic).
    """
    from d3rlpy.logging import FileAdapterFactory

    if init.domains != data.domains:
        raise ConfigError(f"initial agent has domains {init.domains[:3]}..., the dataset {data.domains[:3]}...")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    d3rlpy.seed(settings.seed)
    torch.manual_seed(settings.seed)
    dataset = d3rlpy_dataset(data, settings)
    cql = make_cql(init, settings)
    cql.build_with_dataset(dataset)

    settings_json = {"cql": asdict(settings), "agent": init.config.to_dict(), "dataset": data.dataset_id, "format": FORMAT}
    checkpoint, state_file = out / "cql-checkpoint.d3", out / "cql-state.json"
    done, history, seconds = 0, [], 0.0
    if checkpoint.exists() and state_file.exists():
        state = json.loads(state_file.read_text())
        if state["settings"] != json.loads(json.dumps(settings_json)):
            raise ConfigError(f"{checkpoint} was written with other settings; remove it or use another --out")
        cql.load_model(str(checkpoint))
        done, history, seconds = state["steps"], state["history"], state["seconds"]
    else:
        actor_from_agent(cql, init, settings)

    remaining = settings.steps - done
    started = time.perf_counter()
    if remaining > 0:
        fitter = cql.fitter(dataset, n_steps=remaining, n_steps_per_epoch=min(settings.steps_per_epoch, remaining),
                            experiment_name="cql", with_timestamp=False, show_progress=progress, save_interval=10**9,
                            logger_adapter=FileAdapterFactory(root_dir=str(out / "d3rlpy_logs")))
        for epoch, metrics in fitter:
            steps = done + min(epoch * settings.steps_per_epoch, remaining)
            history.append({"steps": steps, **{k: float(v) for k, v in metrics.items()}})
            with atomic_path(checkpoint, suffix=".d3") as tmp:
                cql.save_model(str(tmp))
            write_json(state_file, {"settings": settings_json, "steps": steps, "history": history,
                                    "seconds": seconds + time.perf_counter() - started})
    seconds += time.perf_counter() - started

    agent = agent_from_actor(cql, init, settings)
    agent.meta = {"algo": "cql", "dataset": data.dataset_id, "scenario": data.scenario, "init": init.meta.get("algo"),
                  "train_seconds": round(seconds + init.meta.get("train_seconds", 0.0), 2), "dataset_transitions": len(data)}
    agent.save(out / "cql.pt")
    metrics = {**settings_json, "transitions": len(data), "seconds": round(seconds, 2),
               "final": history[-1] if history else None, "history": history}
    write_json(out / "cql-metrics.json", metrics)
    return agent, metrics, cql
