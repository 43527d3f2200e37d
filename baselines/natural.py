"""The natural mix: every domain in proportion to its training tokens (stratified sampling over the corpus).

The mixture a pipeline gets by concatenating its data; Aioli (Chen et al. 2024) reports that no earlier
mixing method reliably beats it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .fitted import FittedMixture


@dataclass(frozen=True)
class NaturalConfig:
    pass


def natural_mixture(train_sequences: np.ndarray) -> np.ndarray:
    """Each domain's share of the training sequences (all of equal length, so of the tokens)."""
    counts = np.asarray(train_sequences, np.float64)
    return counts / counts.sum()


class Natural(FittedMixture):
    """The token-proportional mixture of the scenario's domains, held static."""

    name, kind = "baseline:natural", "natural"

    def __init__(self, config: NaturalConfig = NaturalConfig()):
        super().__init__(config)

    def fit(self, env, progress: bool) -> dict[str, Any]:
        base = env.unwrapped
        mixture = natural_mixture([base.shards.train_sequences(d) for d in range(base.num_domains)])
        return {"mixture": mixture.tolist(), "compute": {}}
