"""Lasting: any policy, its target fields' shares capped so that a scarce target corpus lasts the episode.

Where a used-up target field ends the episode (`on_exhausted="terminate"`), a mixture that reads the target corpus
faster than the horizon allows loses every step after it runs out. The wrapper reads from the episode so far how
much of each target field a step at a given share uses (the observation carries each target field's fraction of
data left), and from the second step on gives no target field more than its data left spread evenly over the steps
left; the share it takes away goes to the source field, in the policy's own source proportions. Where no target
field runs out the policy plays unchanged. It spends no proxy run: a rule, not a search, so it transfers to any
scenario. The first step has nothing to read the corpus's size from, so a corpus that the first step's mixture uses
up is not saved. Spec `<policy spec>@lasting` (`leaderboard.registry`).
"""

from __future__ import annotations

import numpy as np

from dmix_gym.data.domains import collapse
from dmix_gym.policy import History, Policy, PolicyWrapper


def sequences_read(shares: np.ndarray, left: np.ndarray, sequences_per_step: int) -> tuple[np.ndarray, np.ndarray]:
    """(sequences each target field held at the start, sequences it holds now), estimated from an episode so far:
    `shares` (t, F) each target field's share of the mixture at each step, `left` (t + 1, F) its fraction of data
    left at reset and after each step. A field the episode has not read yet gives NaN (nothing to estimate from)."""
    used = left[0] - left[-1]
    drawn = np.round(shares * sequences_per_step).sum(axis=0)  # the env draws whole sequences (largest remainder)
    with np.errstate(divide="ignore", invalid="ignore"):
        total = np.where(used > 0, np.round(drawn / used), np.nan)
    return total, np.round(left[-1] * total)


def lasting_caps(left_sequences: np.ndarray, steps_left: int, sequences_per_step: int) -> np.ndarray:
    """(F,) the largest share each target field can take at every one of the `steps_left` steps without running out:
    whole sequences a step, its data left spread evenly (NaN, no cap, where its size is unknown)."""
    return np.floor(left_sequences / steps_left) / sequences_per_step


def cap_target_shares(p: np.ndarray, field_of: np.ndarray, caps: np.ndarray, p0: np.ndarray) -> np.ndarray:
    """`p` with target field f's share (field f + 1) at most `caps[f]` (NaN: uncapped), its domains scaled alike; what
    is taken away goes to the source field (field 0) in `p`'s proportions there, or `p0`'s where `p` gives it none."""
    p = np.asarray(p, np.float64).copy()
    freed = 0.0
    for f, cap in enumerate(caps):
        mask = field_of == f + 1
        share = p[mask].sum()
        if np.isfinite(cap) and share > cap:
            p[mask] *= cap / share
            freed += share - cap
    if freed > 0:
        source = field_of == 0
        spread = p[source] if p[source].sum() > 0 else np.asarray(p0, np.float64)[source]
        p[source] += freed * spread / spread.sum()
    return p / p.sum()


class Lasting(PolicyWrapper):
    """`inner`, with each target field's share capped so that its data lasts to the horizon (see the module)."""

    def __init__(self, inner: Policy):
        super().__init__(inner)
        self.name = f"{inner.name}@lasting"
        if getattr(inner, "domain_space", None) is not None:  # an agent: adapt_env bridges the env to its own space
            self.domain_space = inner.domain_space
        if callable(getattr(inner, "field_splits", None)):
            self.field_splits = inner.field_splits

    def act(self, history: History) -> np.ndarray:
        p = self.inner.act(history)
        info, steps = self.info, len(history) - 1
        if steps == 0 or not info.target_runs_out:
            return p
        space = info.domain_space
        observations = history.stacked()
        shares = collapse(observations[1:, :space.size], space)[:, 1:]  # each target field's share (field 0: source)
        left = observations[:, -len(space.target_fields):]
        _, left_sequences = sequences_read(shares, left, info.sequences_per_step)
        caps = lasting_caps(left_sequences, info.max_steps - steps, info.sequences_per_step)
        return cap_target_shares(p, np.asarray(space.field_of), caps, np.asarray(space.p0))
