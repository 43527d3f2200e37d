"""Where an agent's training data has been, and a guard that hands the episode to a safe mixture once it leaves.

The v2 agents failed off their training scenario one way (issue #46): at 9.4x the proxy's size the IQL agent left its
data's states after one step and climbed to 0.99 target; on another source corpus it went target-heavy. Offline RL
has a standard answer where the data cannot vouch for the learned policy: follow a policy it can (SPIBB's safe policy
improvement with a baseline). Here:

- **support**: the state tokens the agent trained on (each window's last token, without the data-left tail, which
  recorded episodes do not carry), each dimension divided by its spread over the data. A state is inside when its
  distance to its k-th nearest training token is within the radius that holds `coverage` of the training tokens
  themselves (leave-one-out), so about 1% of the data's own states count as outside at the default.
- **fallback**: the mean mixture of the data's best episodes by balanced return (the expert level: in dataset v2,
  near copies of the searched optimum), in the agent's action space. No per-task compute.
- **dynamics**: what the first step moved, f_1 - f_0 per field, against what the data's first steps moved for the
  same first mixture (a least-squares fit over the data's episodes; each field's residual in units of its spread
  over the data). A first move outside the residuals that hold `coverage` of the data's own episodes says the task
  learns or forgets at another speed than any logged one (another model size or shape, another corpus): the
  learned policy's reading of the feedback is then unvouched for, wherever its states lie.
- **guard**: the agent acts while its state is inside and its first move matched; from the first step either
  fails, the fallback, for the rest of the episode (a drift does not come back into support by itself, and
  switching back and forth would be a policy no data describes).

The settings are set a priori (k = 5, coverage 0.99, the top 10% of episodes), never tuned on evaluation tasks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dmix_gym.errors import ConfigError, MissingFileError
from dmix_gym.policy import History, Policy, PolicyWrapper, ScenarioInfo
from dmix_gym.utils.atomic import atomic_path, sha256_file, write_json

from .offline_data import OfflineData


@dataclass(frozen=True)
class SupportConfig:
    neighbours: int = 5  # k of the k-th nearest training token
    coverage: float = 0.99  # the share of the training tokens the radius holds
    top: float = 0.1  # the fallback: the mean mixture of this share of episodes, by balanced return
    max_tokens: int = 20_000  # training tokens kept (a seeded subsample beyond this)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.neighbours < 1 or not 0 < self.coverage < 1 or not 0 < self.top <= 1 or self.max_tokens <= self.neighbours:
            raise ConfigError(f"support settings out of range: {self}")


@dataclass(frozen=True)
class Support:
    """The training tokens (scaled), the radius that counts as seen, and the mixture to fall back to."""

    tokens: np.ndarray  # (N, F) training state tokens, each dimension divided by `scale`
    scale: np.ndarray  # (F,)
    radius: float
    neighbours: int
    fallback: np.ndarray  # (D,) a mixture
    first_move: np.ndarray  # (D + 1, K) least squares: [first mixture, 1] -> f_1 - f_0
    first_move_scale: np.ndarray  # (K,) each field's residual spread over the data's episodes
    first_move_radius: float  # the largest scaled residual (over fields) that `coverage` of the episodes stay within

    def first_move_residual(self, first_mixture: np.ndarray, move: np.ndarray) -> float:
        """The largest (over fields) scaled gap between a first step's move and what the data predicts for its mixture."""
        predicted = np.append(np.asarray(first_mixture, np.float64), 1.0) @ self.first_move
        return float(np.max(np.abs(np.asarray(move, np.float64) - predicted) / self.first_move_scale))

    def distances(self, states: np.ndarray) -> np.ndarray:
        """(T,) each state's distance (scaled) to its k-th nearest training token."""
        x = torch.from_numpy(np.asarray(states, np.float32)[:, :self.scale.size] / self.scale)
        return kth_distances(x, torch.from_numpy(self.tokens), self.neighbours).numpy()

    def inside(self, states: np.ndarray) -> np.ndarray:
        """(T,) whether each state lies within the data's support."""
        return self.distances(states) <= self.radius

    def save(self, path: str | Path) -> Path:
        with atomic_path(Path(path), suffix=".npz") as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, tokens=self.tokens, scale=self.scale, radius=self.radius, neighbours=self.neighbours,
                         fallback=self.fallback, first_move=self.first_move, first_move_scale=self.first_move_scale,
                         first_move_radius=self.first_move_radius)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "Support":
        if not Path(path).is_file():
            raise MissingFileError(f"no support file at {path}")
        with np.load(path) as saved:
            return cls(saved["tokens"], saved["scale"], float(saved["radius"]), int(saved["neighbours"]), saved["fallback"],
                       saved["first_move"], saved["first_move_scale"], float(saved["first_move_radius"]))


def kth_distances(x: torch.Tensor, tokens: torch.Tensor, k: int, exclude_self: bool = False) -> torch.Tensor:
    """(T,) distance from each row of x to its k-th nearest row of `tokens` (the nearest skipped when x is tokens)."""
    out = []
    for chunk in torch.split(x, 1024):
        d = torch.cdist(chunk, tokens)
        out.append(d.topk(k + int(exclude_self), largest=False).values[:, -1])
    return torch.cat(out) if out else torch.zeros(0)


def state_dims(data: OfflineData) -> int:
    """How many leading token dimensions the support reads: mixture, feedback features and progress (D + K + 1)."""
    return len(data.domains) + len(data.fields) + 1


def fit_support(data: OfflineData, config: SupportConfig = SupportConfig()) -> Support:
    """The support of the states `data` holds and its best episodes' mean mixture."""
    states = data.windows[:, -1, :state_dims(data)].astype(np.float32)
    if len(states) > config.max_tokens:
        keep = np.random.default_rng(config.seed).choice(len(states), config.max_tokens, replace=False)
        states = states[np.sort(keep)]
    if len(states) <= config.neighbours:
        raise ConfigError(f"a support needs more than {config.neighbours} states, the data has {len(states)}")
    scale = np.maximum(states.std(0), 1e-2).astype(np.float32)
    tokens = states / scale
    own = kth_distances(torch.from_numpy(tokens), torch.from_numpy(tokens), config.neighbours, exclude_self=True)
    fallback = data.top_episodes(config.top).actions.astype(np.float64).mean(0)
    weights, move_scale, move_radius = fit_first_move(data, config.coverage)
    return Support(tokens, scale, float(np.quantile(own.numpy(), config.coverage)), config.neighbours,
                   fallback / fallback.sum(), weights, move_scale, move_radius)


def fit_first_move(data: OfflineData, coverage: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Least squares from each episode's first mixture to its first move f_1 - f_0, each field's spread of the
    leave-one-out residuals, and the largest scaled one that `coverage` of the episodes stay within."""
    _, first = np.unique(data.episode, return_index=True)
    x = np.concatenate([data.actions[first].astype(np.float64), np.ones((len(first), 1))], axis=1)
    y = data.feedback_change[first].astype(np.float64)
    weights = np.linalg.lstsq(x, y, rcond=None)[0]
    # leave-one-out residuals (r / (1 - h)): how far a first move the fit has not seen lands from its prediction
    leverage = np.einsum("ij,ji->i", x, np.linalg.pinv(x))
    residual = (y - x @ weights) / np.maximum(1.0 - leverage, 1e-3)[:, None]
    scale = np.maximum(residual.std(0), 1e-6)
    return weights, scale, float(np.quantile(np.max(np.abs(residual) / scale, axis=1), coverage))


class SupportGuard(PolicyWrapper):
    """A policy (an agent) while its data vouches for it (`vouched`: its state in the support, its first move like the
    data's); the data's best mixture from the first step it does not, for the rest of the episode."""

    def __init__(self, inner: Policy, support: Support, inner_spec: str = ""):
        super().__init__(inner)
        self.support, self.inner_spec = support, inner_spec
        self.name = f"{getattr(inner, 'name', 'policy')}+guard"
        self.fired_at: int | None = None

    @property
    def domain_space(self):
        """The agent's own domain space (`dmix_gym.policy.adapt_env` bridges the env to it)."""
        return self.inner.domain_space

    def reset(self, info: ScenarioInfo) -> None:
        super().reset(info)
        self.fired_at = None
        if len(self.support.fallback) != info.num_domains:
            raise ConfigError(f"the support's fallback has {len(self.support.fallback)} domains, the env "
                              f"{info.num_domains}; guard an agent of this domain space")

    def act(self, history: History) -> np.ndarray:
        if self.fired_at is None and not self.vouched(history.stacked()):
            self.fired_at = len(history) - 1
        if self.fired_at is not None:
            return self.support.fallback
        return self.inner.act(history)

    def vouched(self, observations: np.ndarray) -> bool:
        """Whether the data vouches for the agent at the last of these raw observations: its state lies in the
        support and (from the first step on) the first step moved the feedback as the data's did."""
        if not self.support.inside(self.inner.state_tokens(observations)[-1:])[0]:
            return False
        if len(observations) < 2:
            return True
        d, k = self.support.first_move.shape[0] - 1, self.support.first_move.shape[1]
        move = observations[1, d:d + k] - observations[0, d:d + k]
        return self.support.first_move_residual(observations[1, :d], move) <= self.support.first_move_radius

    def save(self, path: str | Path) -> Path:
        """`path` (JSON) naming the agent and the support file, saved beside it as `<stem>.support.npz`, with both
        files' digests: the JSON's own digest (the leaderboard's fingerprint) then covers all three."""
        path = Path(path)
        support = self.support.save(path.with_suffix(".support.npz"))
        agent = Path(self.inner_spec)
        spec = os.path.relpath(agent, path.parent) if agent.is_file() else self.inner_spec  # the folder moves as one
        write_json(path, {"policy": "guard", "agent": spec,
                          "agent_sha256": sha256_file(agent) if agent.is_file() else None,
                          "support": support.name, "support_sha256": sha256_file(support)})
        return path
