"""Aioli (Chen et al. 2024, "Aioli: A Unified Optimization Framework for Language Model Data Mixing"), at
proxy scale: online estimation of a linear mixing law, inside the episode's own budget.

Aioli models one training step at mixture p as lowering each group's loss linearly in p,
L_{t+1} = L_t - A_t p (its "linear dynamic mixing law"), estimates A_t online from short probing runs,
and takes an exponentiated-gradient step on the total loss decrease, p <- normalise(p * exp(eta A_t^T 1)).
DataMix-v0 cannot rewind a step, so the probes are the episode's own steps: each round trains K probe
steps at p perturbed toward one group, (1 - delta) p + delta e_k, reads the per-group loss drop of each,
solves the K x K system for A_t, and updates p. Every step is a probe step training on real data, so
Aioli spends no tokens beyond the episode's own budget and needs no proxy runs. Groups are the scenario's
fields (K of them), so a round costs K steps whatever the number of domains; within a field, domains
split like p0 or p*.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from dmix_gym.data.domains import collapse, expand
from dmix_gym.policy import History, Policy, ScenarioInfo
from dmix_gym.utils.atomic import write_json


@dataclass(frozen=True)
class AioliConfig:
    delta: float = 0.5  # how far a probe step leans toward its field
    eta: float = 5.0  # step size of the exponentiated-gradient update (losses are nats)
    ridge: float = 1e-6  # keeps the probe system solvable when two probes coincide


def probe_mixture(p: np.ndarray, k: int, delta: float) -> np.ndarray:
    """(1 - delta) p + delta e_k."""
    probe = (1 - delta) * np.asarray(p, np.float64)
    probe[k] += delta
    return probe


def estimate_law(mixtures: np.ndarray, drops: np.ndarray, ridge: float = 1e-6) -> np.ndarray:
    """A with drops ~ mixtures @ A.T: row i of A says how much each group's share lowers group i's loss."""
    m, d = np.asarray(mixtures, np.float64), np.asarray(drops, np.float64)
    return np.linalg.solve(m.T @ m + ridge * np.eye(m.shape[1]), m.T @ d).T


def aioli_update(p: np.ndarray, law: np.ndarray, eta: float, weights: np.ndarray) -> np.ndarray:
    """p <- normalise(p * exp(eta * sum_i w_i A_ij)): toward the groups that lower the weighted loss most."""
    gradient = np.asarray(weights, np.float64) @ law
    logits = np.log(np.maximum(p, 1e-12)) + eta * (gradient - gradient.max())
    q = np.exp(logits - logits.max())
    return q / q.sum()


class Aioli(Policy):
    """Rounds of K probe steps (one per field), each round ending in an update of the field mixture."""

    name = "baseline:aioli"

    def __init__(self, config: AioliConfig = AioliConfig()):
        self.config = config

    def prepare(self, env, progress: bool = True) -> None:
        self.loss_space = env.unwrapped.domain_space  # losses come per domain of the env itself, whatever the wrappers
        self.weights = np.asarray(env.unwrapped.scenario.weights(), np.float64)

    def reset(self, info: ScenarioInfo) -> None:
        super().reset(info)
        k = len(info.domain_space.fields)
        self.p = np.full(k, 1.0 / k)
        self.probes: list[tuple[np.ndarray, np.ndarray]] = []  # (mixture, per-field loss drop) of this round

    def _field_loss(self, info: dict) -> np.ndarray:
        """Each field's held-out loss: its domains' losses weighted like p0 (source) or p* (targets)."""
        within = expand(np.ones(len(self.loss_space.fields)), self.loss_space)
        return collapse(np.asarray(info["domain_loss"], np.float64) * within, self.loss_space)

    def act(self, history: History) -> np.ndarray:
        k = len(self.p)
        if len(history) > 1:  # the last step was a probe: record its mixture and the loss drop it caused
            before, after = self._field_loss(history.infos[-2]), self._field_loss(history.infos[-1])
            self.probes.append((self.last, before - after))
            if len(self.probes) == k:  # a round is complete: fit the law, move p
                mixtures, drops = map(np.stack, zip(*self.probes))
                self.p = aioli_update(self.p, estimate_law(mixtures, drops, self.config.ridge), self.config.eta,
                                      self.weights)
                self.probes = []
        self.last = probe_mixture(self.p, len(self.probes), self.config.delta)
        space = self.info.domain_space
        return self.last if space.size == k else expand(self.last, space)

    def save(self, path: str | Path) -> Path:
        write_json(path, {"policy": self.name, "config": asdict(self.config)})
        return Path(path)
