"""Score arithmetic: pure functions over final feedback."""

from __future__ import annotations

import numpy as np


def balanced_score(final_feedback, mean, std) -> float:
    """Mean over fields of the final feedback standardised with the dataset's per-field mean and std."""
    f, mu, sd = (np.asarray(x, dtype=np.float64) for x in (final_feedback, mean, std))
    if f.shape != mu.shape or f.shape != sd.shape:
        raise ValueError(f"feedback {f.shape}, mean {mu.shape} and std {sd.shape} must have one entry per field")
    if np.any(sd <= 0):
        raise ValueError(f"feedback std must be positive, got {sd.tolist()}")
    return float(np.mean((f - mu) / sd))


def normalised_score(score: float, ref_min: float, ref_max: float) -> float:
    """D4RL-style: 0 at the random-mixture reference, 100 at the best static mixture of the reference grid."""
    if not ref_max > ref_min:
        raise ValueError(f"ref_max ({ref_max}) must exceed ref_min ({ref_min}) to normalise a score")
    return 100.0 * (score - ref_min) / (ref_max - ref_min)


def mean_std(values) -> tuple[float, float]:
    """Mean and (population) standard deviation; (nan, nan) for no values."""
    v = np.asarray(list(values), dtype=np.float64)
    return (float(v.mean()), float(v.std())) if len(v) else (float("nan"), float("nan"))
