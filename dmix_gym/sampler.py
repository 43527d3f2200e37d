"""Draws each step's training sequences across domains by the mixture, without replacement in an episode."""

from __future__ import annotations

import numpy as np


def largest_remainder(p: np.ndarray, n: int) -> np.ndarray:
    """Integer counts summing to n, as close to p * n as possible (Hamilton's method)."""
    raw = np.asarray(p, dtype=np.float64) * n
    counts = np.floor(raw).astype(np.int64)
    short = n - int(counts.sum())
    if short > 0:
        order = np.argsort(-(raw - counts), kind="stable")
        counts[order[:short]] += 1
    return counts


def _spread(n: int, spare: np.ndarray) -> np.ndarray:
    """Up to n extra sequences over domains in proportion to their spare sequences."""
    n = min(int(n), int(spare.sum()))
    if n <= 0:
        return np.zeros_like(spare)
    return np.minimum(largest_remainder(spare / spare.sum(), n), spare)


def allocate(p: np.ndarray, n: int, remaining: np.ndarray, field_of: np.ndarray) -> np.ndarray:
    """Sequences to draw per domain: p's share, capped by what is left.

    A domain's shortfall moves to the other domains of its field (in proportion to what they
    have left); only what its whole field cannot supply moves to the other fields.
    """
    want = largest_remainder(p, n)
    counts = np.minimum(want, remaining)
    for k in np.unique(field_of):
        mask = field_of == k
        counts += _spread(want[mask].sum() - counts[mask].sum(), np.where(mask, remaining - counts, 0))
    counts += _spread(n - counts.sum(), remaining - counts)
    return counts


class MixtureSampler:
    """Tracks, per domain, a shuffled order of training sequences and how many are used."""

    def __init__(self, train_sequences: np.ndarray, field_of: np.ndarray, sequences_per_step: int):
        self.totals = np.asarray(train_sequences, dtype=np.int64)
        self.field_of = np.asarray(field_of, dtype=np.int64)
        self.sequences_per_step = sequences_per_step
        self.orders: list[np.ndarray] = []
        self.used = np.zeros_like(self.totals)

    def reset(self, rng: np.random.Generator) -> None:
        """A fresh episode: new orders, nothing used."""
        self.orders = [rng.permutation(int(t)) for t in self.totals]
        self.used = np.zeros_like(self.totals)

    @property
    def remaining(self) -> np.ndarray:
        return self.totals - self.used

    def field_fraction_left(self) -> np.ndarray:
        """(K,) share of each field's training sequences not yet drawn."""
        k = int(self.field_of.max()) + 1
        total = np.bincount(self.field_of, weights=self.totals, minlength=k)
        left = np.bincount(self.field_of, weights=self.remaining, minlength=k)
        return left / total

    def plan(self, p: np.ndarray) -> np.ndarray:
        """Sequences per domain that a step with mixture p would draw (no state change)."""
        return allocate(p, self.sequences_per_step, self.remaining, self.field_of)

    def draw(self, counts: np.ndarray) -> list[tuple[int, int]]:
        """Take `counts[d]` unused sequences from each domain; return (domain, sequence index) pairs."""
        picks = []
        for d, c in enumerate(counts):
            start = self.used[d]
            picks.extend((d, int(i)) for i in self.orders[d][start : start + c])
            self.used[d] += c
        return picks
