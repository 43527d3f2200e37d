"""The Data Mixing Agent as a policy: a trained `MixingNet` plus what it needs to read an episode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from dmix_gym.data.domains import DomainSpace
from dmix_gym.errors import ConfigError, MissingFileError
from dmix_gym.policy import History, Policy, ScenarioInfo
from dmix_gym.utils.atomic import atomic_path

from .features import last_window, tokens, windows
from .networks import AgentConfig, MixingNet

FORMAT = "dmix-agent/3"


COMPUTE_KEYS = ("algo", "dataset", "train_seconds", "dataset_transitions", "device")  # what the leaderboard charges


class TransformerAgent(Policy):
    """Acts with a `MixingNet` over the last `window` state tokens of the episode."""

    def __init__(self, net: MixingNet, domain_space: DomainSpace, feedback_mean: np.ndarray, feedback_std: np.ndarray,
                 name: str = "agent", meta: dict[str, Any] | None = None):
        if domain_space.size != net.num_domains or len(domain_space.fields) != net.num_fields:
            raise ValueError(f"net is for {net.num_domains} domains / {net.num_fields} fields, "
                             f"got {domain_space.size} / {len(domain_space.fields)}")
        self.net = net.eval()
        self.domain_space = domain_space
        self.domains, self.fields = domain_space.names, domain_space.fields
        self.feedback_mean = np.asarray(feedback_mean, np.float32)
        self.feedback_std = np.maximum(np.asarray(feedback_std, np.float32), 1e-6)
        self.name = name
        self.meta = dict(meta or {})

    @classmethod
    def create(cls, domain_space: DomainSpace, feedback_mean, feedback_std, config: AgentConfig = AgentConfig(), seed: int = 0,
               name: str = "agent") -> "TransformerAgent":
        """A freshly initialised agent for a domain space."""
        torch.manual_seed(seed)
        net = MixingNet(domain_space.size, len(domain_space.fields), config, len(domain_space.target_fields))
        return cls(net, domain_space, feedback_mean, feedback_std, name)

    @property
    def config(self) -> AgentConfig:
        return self.net.config

    def reset(self, info: ScenarioInfo) -> None:
        names = tuple(info.domain_space.names)
        if names != self.domains:
            raise ConfigError(f"agent {self.name!r} was trained on domains {list(self.domains)[:4]}... ({len(self.domains)}), "
                             f"but the env has {list(names)[:4]}... ({len(names)}); roll it out with agents.rollout (which "
                             f"adapts the env through CollapseDomains) or train on this domain space")
        super().reset(info)

    def state_tokens(self, observations: np.ndarray) -> np.ndarray:
        """(T, token_dim) state tokens of raw observations (see agents.features)."""
        return tokens(observations, self.net.num_domains, self.net.num_fields, self.feedback_mean, self.feedback_std,
                      self.config.features, self.config.target_left)

    @torch.no_grad()
    def window_target_shares(self, state_tokens: np.ndarray) -> np.ndarray:
        """(T,) the target field's share of the mixture the agent would choose from the window ending at each of
        `state_tokens` (row t: the choice made after state t), batched: for probing an agent on recorded or altered
        episodes."""
        p = self.net.mixture(torch.from_numpy(windows(state_tokens, self.config.window))).double().numpy()
        return p[:, np.asarray(self.domain_space.field_of) != 0].sum(1)  # the source field comes first

    @torch.no_grad()
    def act(self, history: History) -> np.ndarray:
        window = last_window(self.state_tokens(history.stacked()), self.config.window)
        p = self.net.mixture(torch.from_numpy(window)[None]).double()[0].numpy()
        return p / p.sum()

    def compute(self) -> dict[str, Any]:
        return {k: self.meta[k] for k in COMPUTE_KEYS if k in self.meta}

    def save(self, path: str | Path) -> Path:
        """Write the agent atomically to one file (torch format)."""
        path = Path(path)
        payload = {
            "format": FORMAT, "name": self.name, "config": self.config.to_dict(), "domain_space": self.domain_space.to_dict(),
            "feedback_mean": self.feedback_mean.tolist(), "feedback_std": self.feedback_std.tolist(),
            "meta": self.meta, "state_dict": self.net.state_dict(),
        }
        with atomic_path(path, suffix=".pt") as tmp:
            torch.save(payload, tmp)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "TransformerAgent":
        path = Path(path)
        if not path.is_file():
            raise MissingFileError(f"no saved agent at {path}")
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ConfigError(f"{path} is not a saved dmix agent (format {FORMAT})")
        space = DomainSpace.from_dict(payload["domain_space"])
        # An agent saved before the features (target_left) setting read the feedback's level (no data left).
        config = AgentConfig(**{"features": "absolute", "target_left": False, **payload["config"]})
        net = MixingNet(space.size, len(space.fields), config, len(space.target_fields))
        net.load_state_dict(payload["state_dict"])
        return cls(net, space, np.array(payload["feedback_mean"]), np.array(payload["feedback_std"]), payload["name"],
                   payload["meta"])


def device_label(device: str | bool) -> str:
    """The device a training ran on, as the leaderboard charges it: the GPU's name, or the CPU and its threads."""
    if device is False or str(device).startswith("cpu"):
        return f"CPU ({torch.get_num_threads()} threads)"
    return torch.cuda.get_device_name(torch.device(device))
