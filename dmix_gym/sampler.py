"""Draws each step's training sequences across domains by the mixture, without replacement in an episode."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

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


def available_sequences(train_sequences: np.ndarray, field_of: np.ndarray, target_fraction: float) -> np.ndarray:
    """Training sequences per domain an episode may draw: all of a source domain's, the first `target_fraction`
    of a target domain's (at least one), so a scarce target corpus is the same fixed subset in every episode."""
    totals = np.asarray(train_sequences, dtype=np.int64)
    scarce = np.maximum(1, np.floor(totals * target_fraction)).astype(np.int64)
    return np.where(np.asarray(field_of) == 0, totals, np.minimum(totals, scarce))


class MixtureSampler:
    """Tracks, per domain, a shuffled order of training sequences and how many are used.

    Without `repeat` a domain's sequences are drawn at most once an episode (a used-up domain's share moves
    to the others, see `allocate`). With `repeat` a used-up domain starts another pass over its sequences in
    a fresh order (an epoch), so any mixture can be drawn; `epochs()` counts the passes.
    """

    def __init__(self, train_sequences: np.ndarray, field_of: np.ndarray, sequences_per_step: int, repeat: bool = False):
        self.totals = np.asarray(train_sequences, dtype=np.int64)
        self.field_of = np.asarray(field_of, dtype=np.int64)
        self.sequences_per_step = sequences_per_step
        self.repeat = repeat
        self.orders: list[np.ndarray] = []
        self.used = np.zeros_like(self.totals)
        self._epoch_seed = 0
        self._passes: dict[tuple[int, int, int], np.ndarray] = {}

    @classmethod
    def for_episode(cls, train_sequences, field_of, train, seq_len: int) -> "MixtureSampler":
        """The sampler an episode draws with under a scenario's `TrainConfig` `train`: its scarce target corpus,
        its sequences a step and its rule for a used-up domain."""
        return cls(available_sequences(train_sequences, field_of, train.target_fraction), np.asarray(field_of),
                   train.sequences_per_step(seq_len), repeat=train.on_exhausted == "repeat")

    def reset(self, rng: np.random.Generator) -> None:
        """A fresh episode: new orders, nothing used."""
        self.orders = [rng.permutation(int(t)) for t in self.totals]
        self.used = np.zeros_like(self.totals)
        if self.repeat:  # drawn only when repeating, so episodes without it keep their random stream
            self._epoch_seed = int(rng.integers(2**31 - 1))

    @property
    def remaining(self) -> np.ndarray:
        """Sequences per domain not yet drawn in this episode (0 once a repeating domain has been read whole)."""
        return np.maximum(self.totals - self.used, 0)

    def epochs(self) -> np.ndarray:
        """(D,) passes over each domain's sequences so far (above 1 only when repeating)."""
        return self.used / self.totals

    def field_fraction_left(self) -> np.ndarray:
        """(K,) share of each field's training sequences not yet drawn."""
        k = int(self.field_of.max()) + 1
        total = np.bincount(self.field_of, weights=self.totals, minlength=k)
        left = np.bincount(self.field_of, weights=self.remaining, minlength=k)
        return left / total

    def plan(self, p: np.ndarray) -> np.ndarray:
        """Sequences per domain that a step with mixture p would draw (no state change)."""
        if self.repeat:
            return largest_remainder(p, self.sequences_per_step)
        return allocate(p, self.sequences_per_step, self.remaining, self.field_of)

    def draw(self, counts: np.ndarray) -> list[tuple[int, int]]:
        """Take the next `counts[d]` sequences of each domain's order; return (domain, sequence index) pairs."""
        picks = []
        for d, c in enumerate(counts):
            start = int(self.used[d])
            picks.extend((d, int(self._order(d, i))) for i in range(start, start + int(c)))
            self.used[d] += c
        return picks

    def _order(self, d: int, position: int) -> int:
        """The sequence at `position` of domain d's reading order: pass 0 is the reset's permutation, pass e > 0
        a permutation of its own, a function of the episode and (d, e) alone (so a resumed episode reads the same)."""
        epoch, index = divmod(position, int(self.totals[d]))
        if epoch == 0:
            return self.orders[d][index]
        if not self.repeat:
            raise IndexError(f"domain {d} has no sequence left")
        key = (self._epoch_seed, d, epoch)
        if key not in self._passes:
            self._passes = {k: v for k, v in self._passes.items() if k[1] != d}  # one later pass kept per domain
            self._passes[key] = np.random.default_rng(list(key)).permutation(int(self.totals[d]))
        return self._passes[key][index]


def planned_draws(sampler: MixtureSampler, mixtures: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """Sequences per domain that each of `mixtures` (one a step) draws from a fresh episode, by the env's own rule,
    up to and including the step that uses a target field up (when not repeating); `sampler` is left as it was."""
    trial = MixtureSampler(sampler.totals, sampler.field_of, sampler.sequences_per_step, sampler.repeat)
    targets = np.arange(1, int(sampler.field_of.max()) + 1)  # field 0 is the source
    for p in mixtures:
        counts = trial.plan(np.asarray(p, np.float64))
        trial.used += counts
        yield counts
        if not trial.repeat and np.any(trial.field_fraction_left()[targets] == 0):
            return


def steps_lasted(sampler: MixtureSampler, p: np.ndarray, max_steps: int) -> int:
    """Steps a fixed mixture `p` lasts from a fresh episode before a target field is used up (`max_steps` if none
    is, or when repeating), by the env's own rule; `sampler` itself is left as it was."""
    if sampler.repeat:
        return max_steps
    return sum(1 for _ in planned_draws(sampler, itertools.repeat(p, max_steps)))
