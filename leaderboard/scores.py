"""Score arithmetic: pure functions over scores (the score of a final feedback is the protocol's `Objective`)."""

from __future__ import annotations

import numpy as np


def normalised_score(score: float, ref_min: float, ref_max: float) -> float:
    """D4RL-style: 0 at the random-mixture reference, 100 at the best static mixture of the reference grid."""
    if not ref_max > ref_min:
        raise ValueError(f"ref_max ({ref_max}) must exceed ref_min ({ref_min}) to normalise a score")
    return 100.0 * (score - ref_min) / (ref_max - ref_min)


def mean_std(values) -> tuple[float, float]:
    """Mean and (population) standard deviation; (nan, nan) for no values."""
    v = np.asarray(list(values), dtype=np.float64)
    return (float(v.mean()), float(v.std())) if len(v) else (float("nan"), float("nan"))


def iqm(values, axis: int | None = None):
    """Interquartile mean: the mean of the middle 50% of the values (Agarwal et al. 2021, as rliable computes it).
    With `axis`, one per slice along it (an array), as numpy's reductions do."""
    from scipy.stats import trim_mean

    if axis is not None:
        return trim_mean(np.asarray(values, dtype=np.float64), 0.25, axis=axis)
    v = np.asarray(list(values), dtype=np.float64)
    return float(trim_mean(v, 0.25)) if len(v) else float("nan")


def stratified_bootstrap_ci(per_task: list, statistic=iqm, reps: int = 2000, confidence: float = 0.95,
                            seed: int = 0) -> tuple[float, float]:
    """Percentile confidence interval of `statistic` over all runs, resampling runs within each task (stratified
    bootstrap, as rliable does; rliable itself does not import with this stack's pandas and arch). `statistic`
    reduces along an `axis` argument, as `iqm` and `np.mean` do."""
    columns = [np.asarray(c, dtype=np.float64) for c in per_task if len(c)]
    if not columns:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    samples = np.concatenate([c[rng.integers(0, len(c), (reps, len(c)))] for c in columns], axis=1)  # (reps, runs)
    draws = statistic(samples, axis=1)  # every resample in one call: a call each took most of a table's seconds
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(low), float(high)


def paired_difference(a, b, confidence: float = 0.95) -> dict[str, float]:
    """Mean, std and t-interval of a - b over paired seeds."""
    from scipy import stats

    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    n = len(d)
    std = float(d.std(ddof=1)) if n > 1 else float("nan")
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * std / np.sqrt(n)) if n > 1 else float("nan")
    return {"mean": float(d.mean()), "std": std, "low": float(d.mean()) - half, "high": float(d.mean()) + half, "n": n}


def welch_difference(a, b, confidence: float = 0.95) -> dict[str, float]:
    """Mean and Welch t-interval of mean(a) - mean(b) for unpaired samples (rows run on different seeds, such as a
    submission against a reference's confirmation episodes); `n` is the smaller sample's size."""
    from scipy import stats

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if min(len(a), len(b)) < 2:
        raise ValueError(f"an unpaired interval needs 2 or more scores on each side, got {len(a)} and {len(b)}")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = float(np.sqrt(va + vb))
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)) if se > 0 else float(len(a) + len(b) - 2)
    mean = float(a.mean() - b.mean())
    half = float(stats.t.ppf(0.5 + confidence / 2, df) * se)
    return {"mean": mean, "std": se, "low": mean - half, "high": mean + half, "n": min(len(a), len(b))}
