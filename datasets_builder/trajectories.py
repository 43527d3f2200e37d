"""Planned mixture trajectories: the inductive scoring of Algorithm 1 (DESIGN.md, "Trajectory sampling").

For each step t = 1..T, draw N candidate mixtures around the previous one and keep the best by

    score(q) = - a * JS(q, p_{t-1})           stay close to the last step
               - b * (t/T) * JS(q, p*)        drift toward the target distribution over time
               + c * min_tau JS(q, tau_t)     differ from trajectories already sampled

N = 1 gives random walks (low quality); large N gives smooth, target-seeking, diverse
trajectories. Candidates are softmax(log p_{t-1} + noise) (a tenth around uniform). For speed,
trajectories are sampled in waves side by side (the diversity term counts earlier waves),
and only the `shortlist` best candidates by the first two terms are scored for diversity
(exact when N <= shortlist). Everything here is vectorised NumPy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LN2 = float(np.log(2.0))
QUALITY_LEVELS = (1, 100, 1000, 10_000)  # the paper's four candidate counts N


@dataclass(frozen=True)
class SamplerConfig:
    """Weights of the score, shape of the candidate distribution, and batching."""

    closeness: float = 1.0  # a: penalty on JS to the previous mixture
    drift: float = 2.0  # b: penalty on JS to p*, scaled by t/T
    diversity: float = 0.5  # c: reward for JS to the nearest earlier trajectory at the same step
    spread: float = 0.5  # std of the noise added to log p_{t-1}
    floor: float = 1e-3  # added to the previous mixture before the log (lets zero weights grow)
    broad_fraction: float = 0.1  # share of candidates drawn broadly (noise around the uniform mixture)
    broad_spread: float = 1.5  # sigma of those broad draws
    shortlist: int = 64  # candidates (best by the first two terms) scored for diversity
    wave: int = 8  # trajectories sampled side by side; diversity counts earlier waves only


def xlogx(p: np.ndarray) -> np.ndarray:
    """p * log p with 0 log 0 = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence (nats, in [0, ln 2]) over the last axis, broadcasting the rest."""
    m = 0.5 * (p + q)
    return np.maximum(0.5 * xlogx(p).sum(-1) + 0.5 * xlogx(q).sum(-1) - xlogx(m).sum(-1), 0.0)


def _js_to(candidates: np.ndarray, candidate_entropy_term: np.ndarray, p: np.ndarray) -> np.ndarray:
    """JS(q, p) for (..., N, D) candidates whose sum q log q is precomputed, against one (..., 1, D) mixture."""
    m = 0.5 * (candidates + p)
    m_log_m = m * np.log(np.maximum(m, 1e-30, dtype=m.dtype))
    return np.maximum(0.5 * candidate_entropy_term + 0.5 * xlogx(p).sum(-1) - m_log_m.sum(-1), 0.0)


def draw_candidates(previous: np.ndarray, n: int, config: SamplerConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(B, n, D) mixtures around each of the B previous mixtures (softmax of log p + noise), and their sum q log q.

    A share `broad_fraction` of them is drawn around the uniform mixture instead.
    """
    b, d = previous.shape
    # Uniform noise with the variance of N(0, sigma^2): a third of the cost of normal draws.
    logits = rng.random((b, n, d), dtype=np.float32)
    logits -= np.float32(0.5)
    broad = int(n * config.broad_fraction)
    logits[:, : n - broad] *= np.float32(np.sqrt(12.0) * config.spread)
    logits[:, : n - broad] += np.log(previous + config.floor).astype(np.float32)[:, None, :]
    logits[:, n - broad :] *= np.float32(np.sqrt(12.0) * config.broad_spread)
    logits -= logits.max(-1, keepdims=True)
    q = np.exp(logits)
    total = q.sum(-1, keepdims=True)
    q /= total
    log_q = logits - np.log(total)
    return q, (q * log_q).sum(-1)


def nearest_js(candidates: np.ndarray, earlier: np.ndarray, neighbours: int = 2) -> np.ndarray:
    """Per candidate (M, D), JS to the nearest earlier mixture (S, D); ln 2 when there are none.

    Nearest neighbours are found by the Bhattacharyya coefficient (one matrix product), then
    JS is computed exactly against those few.
    """
    if len(earlier) == 0:
        return np.full(len(candidates), LN2)
    affinity = np.sqrt(candidates) @ np.sqrt(earlier).T  # (M, S), larger = closer
    k = min(neighbours, len(earlier))
    nearest = np.argpartition(-affinity, k - 1, axis=1)[:, :k]  # (M, k)
    return js_divergence(candidates[:, None, :], earlier[nearest]).min(1)


def sample_wave(p0: np.ndarray, p_star: np.ndarray, steps: int, width: int, n: int, earlier: np.ndarray,
                config: SamplerConfig, rng: np.random.Generator) -> np.ndarray:
    """(width, steps, D) trajectories sampled side by side, scored against `earlier` (S, steps, D)."""
    d = len(p0)
    out = np.empty((width, steps, d), np.float64)
    previous = np.repeat(p0[None].astype(np.float32), width, 0)
    target = p_star.astype(np.float32)[None, None, :]
    for t in range(steps):
        if n == 1:
            q, _ = draw_candidates(previous, 1, config, rng)
            previous = q[:, 0]
        else:
            q, q_log_q = draw_candidates(previous, n, config, rng)
            partial = -config.closeness * _js_to(q, q_log_q, previous[:, None, :])
            partial -= config.drift * (t + 1) / steps * _js_to(q, q_log_q, target)
            if config.diversity > 0 and len(earlier):
                keep = min(config.shortlist, n)
                top = np.argpartition(-partial, keep - 1, axis=1)[:, :keep]  # (B, K)
                shortlist = np.take_along_axis(q, top[:, :, None], 1)  # (B, K, D)
                bonus = nearest_js(shortlist.reshape(-1, d), earlier[:, t].astype(np.float32)).reshape(width, keep)
                score = np.take_along_axis(partial, top, 1) + config.diversity * bonus
                best = np.take_along_axis(top, score.argmax(1)[:, None], 1)[:, 0]
            else:
                best = partial.argmax(1)
            previous = q[np.arange(width), best]
        out[:, t] = previous / previous.sum(-1, keepdims=True)
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
    for start in range(0, count, config.wave):
        width = min(config.wave, count - start)
        out[start : start + width] = sample_wave(p0, p_star, steps, width, n, out[:start], config, rng)
    return out


@dataclass(frozen=True)
class PlannedEpisode:
    """One episode to collect: its planned mixtures, the candidate count that made them, and the env seed."""

    index: int
    quality: int  # N of Algorithm 1
    seed: int
    actions: np.ndarray  # (T, D)


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
