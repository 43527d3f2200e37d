"""Planned mixture trajectories: the inductive scoring of the Data Mixing Agent paper's Algorithm 1 (its section 3.1;
the docs' *Datasets* page).

For each step t = 1..T, draw N candidate mixtures around the previous one and keep the best by

    score(q) = - a * JS(q, p_{t-1})           stay close to the last step
               - b * (t/T) * JS(q, p*)        drift toward the target distribution over time
               + c * min_tau JS(q, tau_t)     differ from trajectories already sampled

N = 1 gives random walks (low quality); large N gives smooth, target-seeking, diverse
trajectories. A candidate is q ∝ (p_{t-1} + floor) · w², with each sqrt-weight w drawn
uniformly (256 levels) from [1 - spread, 1 + spread]; a tenth are broad draws around the
uniform mixture, w uniform on [0, 2].

For speed (N = 10⁴ at the paper's size is 4·10⁹ candidate entries), the first two terms are
screened with the squared Hellinger distance 1 - Σ sqrt(q p), which equals JS to second order
and needs only matrix products of w; the `shortlist` best by that screen get the exact score,
diversity included (exact when N <= shortlist; in 200 random states at N = 10⁴ the exact best
of the first two terms was always among the screen's best 16). Trajectories are sampled in
waves side by side; the diversity term counts earlier waves. Everything is vectorised NumPy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from dmix_gym.errors import ConfigError

LN2 = float(np.log(2.0))
QUALITY_LEVELS = (1, 100, 1000, 10_000)  # the paper's four candidate counts N
LEVELS = 256  # sqrt-weights are drawn from this many evenly spaced values (one random byte each)


@dataclass(frozen=True)
class SamplerConfig:
    """Weights of the score, shape of the candidate distribution, and batching."""

    closeness: float = 1.0  # a: penalty on JS to the previous mixture
    drift: float = 2.0  # b: penalty on JS to p*, scaled by t/T
    diversity: float = 0.5  # c: reward for JS to the nearest earlier trajectory at the same step
    spread: float = 0.45  # sqrt-weights uniform on [1 - spread, 1 + spread] (log-weight std ~ 0.52)
    floor: float = 1e-3  # added to the previous mixture (lets zero weights grow)
    broad_fraction: float = 0.1  # share of candidates drawn around the uniform mixture, sqrt-weights on [0, 2]
    shortlist: int = 32  # candidates (best by the Hellinger screen) scored exactly, diversity included
    wave: int = 8  # trajectories sampled side by side; diversity counts earlier waves only

    def __post_init__(self) -> None:
        if not 0 < self.spread < 1:
            raise ValueError(f"spread must be in (0, 1), got {self.spread}")
        if not 0 <= self.broad_fraction < 1:
            raise ValueError(f"broad_fraction must be in [0, 1), got {self.broad_fraction}")
        if min(self.shortlist, self.wave) < 1:
            raise ValueError(f"shortlist and wave must be >= 1, got {self.shortlist}, {self.wave}")


def xlogx(p: np.ndarray) -> np.ndarray:
    """p * log p with 0 log 0 = 0."""
    log_p = np.log(p, out=np.zeros(np.shape(p)), where=p > 0)
    return p * log_p


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence (nats, in [0, ln 2]) over the last axis, broadcasting the rest."""
    return _js(p, q, xlogx(p).sum(-1), xlogx(q).sum(-1))


def _js(p: np.ndarray, q: np.ndarray, p_log_p: np.ndarray, q_log_q: np.ndarray) -> np.ndarray:
    """JS(p, q) given each side's summed x log x (computed once when one side meets many others)."""
    return np.maximum(0.5 * p_log_p + 0.5 * q_log_q - xlogx(0.5 * (p + q)).sum(-1), 0.0)


def random_levels(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Uniform random bytes (uint8) of the given shape: the cheapest uniform noise NumPy makes."""
    size = int(np.prod(shape))
    return rng.bit_generator.random_raw(-(-size // 8)).view(np.uint8)[:size].reshape(shape)


def sqrt_weights(levels: np.ndarray, half_width: float, out: np.ndarray | None = None) -> np.ndarray:
    """Sqrt-weights in [1 - half_width, 1 + half_width] (float32) from random bytes."""
    out = np.multiply(levels, np.float32(2 * half_width / LEVELS), out=out, dtype=np.float32)
    return np.add(out, np.float32(1 - half_width * (LEVELS - 1) / LEVELS), out=out)


def nearest_js(candidates: np.ndarray, earlier: np.ndarray, neighbours: int = 2) -> np.ndarray:
    """Per candidate (M, D), JS to the nearest earlier mixture (S, D); ln 2 when there are none.

    Nearest neighbours are found by the Bhattacharyya coefficient (one matrix product), then
    JS is computed exactly against those few.
    """
    if len(earlier) == 0:
        return np.full(len(candidates), LN2)
    affinity = np.sqrt(candidates) @ np.sqrt(earlier).T  # (M, S), larger = closer
    k = min(neighbours, len(earlier))
    nearest = np.empty((len(candidates), k), np.int64)
    for j in range(k):  # k argmax passes: far cheaper than a row-wise argpartition for k this small
        nearest[:, j] = affinity.argmax(1)
        affinity[np.arange(len(candidates)), nearest[:, j]] = -np.inf
    return _js(candidates[:, None, :], earlier[nearest], xlogx(candidates).sum(-1)[:, None],
               xlogx(earlier).sum(-1)[nearest]).min(1)


def _best_of(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values (all of them, unordered, when k >= len)."""
    return np.arange(len(values)) if k >= len(values) else np.argpartition(-values, k - 1)[:k]


def _screen(w: np.ndarray, w2: np.ndarray, centre: np.ndarray, previous: np.ndarray, p_star: np.ndarray,
            weights: tuple[float, float]) -> np.ndarray:
    """The score's first two terms with JS replaced by 1 - BC for candidates q ∝ centre · w² (rows of w)."""
    # BC(q, p) = w @ sqrt(centre * p) / sqrt(w² @ centre): matrix products only.
    norm = np.sqrt(np.square(w, out=w2) @ centre.astype(np.float32))
    affinity = w @ np.sqrt(np.stack([centre * previous, centre * p_star], 1)).astype(np.float32)
    return weights[0] * (1 - affinity[:, 0] / norm) + weights[1] * (1 - affinity[:, 1] / norm)


def choose(previous: np.ndarray, p_star: np.ndarray, progress: float, n: int, earlier: np.ndarray,
           config: SamplerConfig, rng: np.random.Generator, scratch: np.ndarray | None = None) -> np.ndarray:
    """Per row of `previous` (B, D), the best of n candidates around it at `progress` = t/T, against `earlier` (S, D).

    `scratch`, a float32 (2, n, D) buffer, saves re-allocating (and page-faulting) megabytes per row.
    """
    width, d = previous.shape
    broad = int(n * config.broad_fraction) if n > 1 else 0
    focused = previous + config.floor
    if n == 1:
        q = focused * np.square(sqrt_weights(random_levels(rng, (width, d)), config.spread), dtype=np.float64)
        return q / q.sum(-1, keepdims=True)

    w, w2 = np.empty((2, n, d), np.float32) if scratch is None else scratch
    weights = (-config.closeness, -config.drift * progress)
    keep = min(config.shortlist, n)
    q = np.empty((width, keep, d))
    screen = np.empty(n, np.float32)
    for b in range(width):
        levels = random_levels(rng, (n, d))
        sqrt_weights(levels[: n - broad], config.spread, out=w[: n - broad])
        sqrt_weights(levels[n - broad :], 1.0, out=w[n - broad :])
        screen[: n - broad] = _screen(w[: n - broad], w2[: n - broad], focused[b], previous[b], p_star, weights)
        if broad:
            screen[n - broad :] = _screen(w[n - broad :], w2[n - broad :], np.ones(d), previous[b], p_star, weights)
        rows = _best_of(screen, keep)
        q[b] = np.where((rows < n - broad)[:, None], focused[b], 1.0) * np.square(w[rows], dtype=np.float64)
    q /= q.sum(-1, keepdims=True)

    q_log_q = xlogx(q).sum(-1)
    score = (weights[0] * _js(q, previous[:, None], q_log_q, xlogx(previous).sum(-1)[:, None])
             + weights[1] * _js(q, p_star, q_log_q, xlogx(p_star).sum()))
    if config.diversity > 0 and len(earlier):
        score += config.diversity * nearest_js(q.reshape(-1, d), earlier).reshape(width, keep)
    return q[np.arange(width), score.argmax(1)]


def sample_wave(p0: np.ndarray, p_star: np.ndarray, steps: int, width: int, n: int, earlier: np.ndarray,
                config: SamplerConfig, rng: np.random.Generator) -> np.ndarray:
    """(width, steps, D) trajectories sampled side by side, scored against `earlier` (S, steps, D)."""
    out = np.empty((width, steps, len(p0)), np.float64)
    previous = np.repeat(p0[None], width, 0)
    scratch = np.empty((2, n, len(p0)), np.float32)
    for t in range(steps):
        previous = out[:, t] = choose(previous, p_star, (t + 1) / steps, n, earlier[:, t], config, rng, scratch)
    return out


def sample_trajectories(p0: np.ndarray, p_star: np.ndarray, steps: int, count: int, n: int,
                        config: SamplerConfig = SamplerConfig(), seed: int = 0) -> np.ndarray:
    """(count, steps, D) mixtures p_1..p_T; each wave of trajectories is scored against the waves before it."""
    if n < 1 or steps < 1 or count < 0:
        raise ValueError(f"need n >= 1, steps >= 1, count >= 0; got n={n}, steps={steps}, count={count}")
    p0, p_star = np.asarray(p0, np.float64), np.asarray(p_star, np.float64)
    for name, p in (("p0", p0), ("p_star", p_star)):
        if p.ndim != 1 or np.any(p < 0) or not np.isclose(p.sum(), 1.0):
            raise ValueError(f"{name} must be a distribution (non-negative, summing to 1), got {p}")
    rng = np.random.default_rng(seed)
    out = np.empty((count, steps, len(p0)))
    # The matrix products are thin: BLAS threads gain ~10% on an idle machine and lose 8x on a busy one.
    with threadpool_limits(limits=1, user_api="blas"):
        for start in range(0, count, config.wave):
            width = min(config.wave, count - start)
            out[start : start + width] = sample_wave(p0, p_star, steps, width, n, out[:start], config, rng)
    return out


@dataclass(frozen=True)
class PlannedEpisode:
    """One episode to collect: its planned mixtures, the candidate count that made them, and the env seed."""

    index: int
    quality: int  # N of Algorithm 1 (SCHEDULE_QUALITY: a noisy schedule's episode)
    seed: int
    actions: np.ndarray  # (T, D)


SCHEDULE_QUALITY = 0  # the quality label of an episode that follows a given target-share schedule, not Algorithm 1


@dataclass(frozen=True)
class NoisySchedule:
    """Episodes along a target-share schedule, the mixture (1 - s) p0 + s p* with one share s_t a step, each share
    scaled by exp(noise * (eta + eps_t)): eta ~ N(0, 1) once an episode (it spends more or less of the target data in
    all), eps_t ~ N(0, 1) a step. A dataset's in-regime slice where the best mixture depends on the state, e.g. a
    schedule oracle with noise (`benchmarks/headroom.py`) where a scarce target corpus runs out."""

    shares: tuple[float, ...]  # s_1 .. s_T
    episodes: int
    noise: float = 0.3

    def __post_init__(self) -> None:
        if not self.shares or not all(0.0 <= s <= 1.0 for s in self.shares):
            raise ConfigError(f"schedule shares must be target shares in [0, 1], got {list(self.shares)}")
        if self.episodes < 0 or self.noise < 0:
            raise ConfigError(f"schedule episodes and noise must be >= 0, got {self.episodes} and {self.noise}")


def schedule_episodes(p0: np.ndarray, p_star: np.ndarray, schedule: NoisySchedule, seed: int = 0,
                      first_index: int = 0) -> list[PlannedEpisode]:
    """`schedule.episodes` planned episodes along the noisy schedule, indexed from `first_index`."""
    rng = np.random.default_rng([seed, len(schedule.shares), schedule.episodes])
    base = np.asarray(schedule.shares, np.float64)
    episodes = []
    for i in range(schedule.episodes):
        noise = schedule.noise * (rng.standard_normal() + rng.standard_normal(len(base)))
        shares = np.clip(base * np.exp(noise), 0.0, 1.0)[:, None]
        actions = (1.0 - shares) * np.asarray(p0)[None] + shares * np.asarray(p_star)[None]
        index = first_index + i
        episodes.append(PlannedEpisode(index, SCHEDULE_QUALITY, seed * 100_000 + index, actions.astype(np.float32)))
    return episodes


def plan_episodes(p0: np.ndarray, p_star: np.ndarray, steps: int, total: int, qualities: tuple[int, ...] = QUALITY_LEVELS,
                  config: SamplerConfig = SamplerConfig(), seed: int = 0) -> list[PlannedEpisode]:
    """`total` episodes split as evenly as possible over the quality levels, each level sampled as one run."""
    per_level = [total // len(qualities) + (i < total % len(qualities)) for i in range(len(qualities))]
    episodes: list[PlannedEpisode] = []
    for level, (n, count) in enumerate(zip(qualities, per_level)):
        mixtures = sample_trajectories(p0, p_star, steps, count, n, config, seed=seed * 1000 + level)
        for actions in mixtures:
            index = len(episodes)
            episodes.append(PlannedEpisode(index, int(n), seed * 100_000 + index, actions.astype(np.float32)))
    return episodes
