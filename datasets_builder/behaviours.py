"""Dataset v2's behaviour levels beyond Algorithm 1: what a dataset needs so that its support holds the domain optimum.

Algorithm 1 drifts toward p*, so toward the target field's natural within-field proportions; no logged episode of
dataset v1 sits near the best domain mixture (dmix-bench-v3's references). Like D4RL mixing expert, medium and random
data, a collection adds, each with its own quality label (negative, apart from Algorithm 1's N and the schedules' 0):

- `dirichlet-<a>`: one mixture per episode drawn from Dirichlet(a * D * p_nat) (p_nat: p0 and p* averaged), held
  with per-step jitter; small a gives sparse, corner-like mixtures, large a mixtures near the natural one;
- `tilted`: Algorithm 1 (N = 1000) toward a tilted target, p* pulled half-way to one random target domain;
- `near-<name>`: noisy copies of a given mixture (the searched domain optimum, other searched points), each weight
  scaled by exp(noise * (eta_d + eps_td)), eta once an episode and domain, eps a step.

`BehaviourSpec` says how many of each; `plan_behaviours` plans them (seeded, resumable like every plan).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dmix_gym.errors import ConfigError

from .trajectories import PlannedEpisode, SamplerConfig, sample_trajectories

DIRICHLET_BASE = -100  # dirichlet-a: DIRICHLET_BASE - round(10 a)  (a = 0.3 -> -103)
TILTED_QUALITY = -1
NEAR_BASE = -200  # near-<name>: NEAR_BASE - position of the mixture in `near`


@dataclass(frozen=True)
class BehaviourSpec:
    """How many episodes of each behaviour a collection plans (see the module docstring)."""

    dirichlet: dict[float, int] = field(default_factory=dict)  # concentration a -> episodes
    tilted: int = 0
    near: dict[str, tuple[float, ...]] = field(default_factory=dict)  # name -> the mixture (D weights)
    near_episodes: int = 0  # per mixture in `near`
    noise: float = 0.3  # log-normal noise of the near copies and of the Dirichlet jitter

    def __post_init__(self) -> None:
        if any(a <= 0 or n < 0 for a, n in self.dirichlet.items()) or self.tilted < 0 or self.near_episodes < 0:
            raise ConfigError(f"behaviour counts must be >= 0 and concentrations > 0, got {self}")
        for name, mixture in self.near.items():
            if not mixture or min(mixture) < 0 or sum(mixture) <= 0:
                raise ConfigError(f"near mixture {name!r} must be non-negative weights with a positive sum")

    def episodes(self) -> int:
        """How many episodes the spec plans."""
        return sum(self.dirichlet.values()) + self.tilted + self.near_episodes * len(self.near)

    def labels(self) -> dict[int, str]:
        """Quality label -> behaviour name, for a dataset's metadata."""
        names = {dirichlet_quality(a): f"dirichlet-{a:g}" for a in self.dirichlet}
        names.update({NEAR_BASE - i: f"near-{name}" for i, name in enumerate(self.near)})
        return {**names, **({TILTED_QUALITY: "tilted"} if self.tilted else {})}


def dirichlet_quality(concentration: float) -> int:
    return DIRICHLET_BASE - int(round(10 * concentration))


def _jittered(mixture: np.ndarray, steps: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    """(steps, D): `mixture` with each weight scaled by exp(noise * (eta_d + eps_td)), normalised each step."""
    d = len(mixture)
    scale = np.exp(noise * (rng.standard_normal(d)[None] + rng.standard_normal((steps, d))))
    out = mixture[None] * scale
    return out / out.sum(1, keepdims=True)


def plan_behaviours(p0: np.ndarray, p_star: np.ndarray, field_of: np.ndarray, steps: int, spec: BehaviourSpec,
                    seed: int = 0, first_index: int = 0) -> list[PlannedEpisode]:
    """The spec's episodes, indexed from `first_index`; env seeds follow the plan's rule (seed * 100,000 + index)."""
    p0, p_star = np.asarray(p0, np.float64), np.asarray(p_star, np.float64)
    natural = (p0 + p_star) / 2
    d = len(p0)
    rng = np.random.default_rng([seed, 7, first_index])
    episodes: list[PlannedEpisode] = []

    def add(quality: int, actions: np.ndarray) -> None:
        index = first_index + len(episodes)
        episodes.append(PlannedEpisode(index, quality, seed * 100_000 + index, actions.astype(np.float32)))

    for concentration, count in spec.dirichlet.items():
        for _ in range(count):
            mixture = rng.dirichlet(np.maximum(concentration * d * natural, 1e-3))
            add(dirichlet_quality(concentration), _jittered(mixture, steps, spec.noise / 3, rng))
    targets = np.flatnonzero(np.asarray(field_of) != 0)
    for i in range(spec.tilted):
        corner = np.zeros(d)
        corner[rng.choice(targets)] = 1.0
        tilted = (p_star + corner) / 2
        add(TILTED_QUALITY, sample_trajectories(p0, tilted, steps, 1, 1000, SamplerConfig(), seed=seed * 1000 + 500 + i)[0])
    for position, (name, weights) in enumerate(spec.near.items()):
        mixture = np.asarray(weights, np.float64)
        if len(mixture) != d:
            raise ConfigError(f"near mixture {name!r} has {len(mixture)} weights, the domain space {d}")
        for _ in range(spec.near_episodes):
            add(NEAR_BASE - position, _jittered(mixture / mixture.sum(), steps, spec.noise, rng))
    return episodes
