"""DoReMi (Xie et al. 2023, "DoReMi: Optimizing Data Mixtures Speeds Up Language Model Pretraining"), at proxy scale.

1. A reference proxy is trained on a reference mixture (the natural mix) for a whole episode; its
   per-domain held-out losses at the end are the reference losses l_ref.
2. A second proxy is trained with Group DRO over domains (Algorithm 1 of the paper): after each step,
   the excess loss lambda_i = max(l_i - l_ref_i, 0), then the exponentiated-gradient update
   alpha <- normalise(alpha * exp(eta * lambda)) and the smoothing alpha <- (1 - c) alpha + c u.
   The proxy trains on the data drawn by alpha (a resampling variant: DoReMi reweights the loss
   instead; DataMix-v0 trains on what the mixture draws).
3. The average of alpha over the DRO run's steps is the mixture, held for the whole episode.

Both runs are ordinary DataMix-v0 episodes in the scenario (the second depends on the first, so they
run one after the other in this process); the result is cached per scenario with the compute it spent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dmix_gym.data.domains import DomainSpace
from dmix_gym.policy import History, Policy, Replay, ScenarioInfo, rollout

from .dbl import dbl_update
from .fitted import FittedMixture
from .natural import natural_mixture


@dataclass(frozen=True)
class DoReMiConfig:
    eta: float = 1.0  # step size of the domain-weight update (the paper's 1)
    smoothing: float = 1e-3  # c, mixing in the uniform distribution (the paper's 1e-3)
    seed: int = 0  # seed of the reference and DRO episodes


def group_dro_update(weights: np.ndarray, losses: np.ndarray, reference: np.ndarray, eta: float,
                     smoothing: float) -> np.ndarray:
    """One DoReMi step: exponentiated gradient on the clipped excess loss, then smoothing toward uniform."""
    alpha = dbl_update(weights, losses, reference, eta)
    return (1 - smoothing) * alpha + smoothing / len(alpha)


class GroupDRO(Policy):
    """The DRO run's mixture: alpha, updated after each step from the env's per-domain held-out losses."""

    name = "doremi:group-dro"

    def __init__(self, reference: np.ndarray, start: np.ndarray, config: DoReMiConfig):
        self.reference, self.start, self.config = np.asarray(reference), np.asarray(start), config

    def reset(self, info: ScenarioInfo) -> None:
        super().reset(info)
        self.alpha = self.start.copy()
        self.trace: list[np.ndarray] = []

    def act(self, history: History) -> np.ndarray:
        if len(history) > 1:  # reset's losses are the base model's: nothing trained yet
            losses = np.asarray(history.infos[-1]["domain_loss"], np.float64)
            self.alpha = group_dro_update(self.alpha, losses, self.reference, self.config.eta, self.config.smoothing)
        self.trace.append(self.alpha.copy())
        return self.alpha


class DoReMi(FittedMixture):
    """DoReMi's averaged Group-DRO domain weights for the scenario, held static."""

    name, kind = "baseline:doremi", "doremi"

    def __init__(self, config: DoReMiConfig = DoReMiConfig()):
        super().__init__(config)

    def fit(self, env, progress: bool) -> dict[str, Any]:
        return fit_doremi(env.unwrapped, self.config, progress)


def fit_doremi(env, config: DoReMiConfig, progress: bool = True) -> dict[str, Any]:
    """The reference run, then the DRO run; the averaged weights and the compute both spent."""
    space: DomainSpace = env.domain_space
    natural = natural_mixture([env.shards.train_sequences(d) for d in range(env.num_domains)])
    reference_run = rollout(Replay(natural, name="doremi:reference"), env, seed=config.seed, progress=progress)
    reference = reference_run.domain_loss[-1]
    dro = GroupDRO(reference, natural, config)
    dro_run = rollout(dro, env, seed=config.seed + 1, progress=progress)
    mixture = np.mean(dro.trace, axis=0)
    runs = (reference_run, dro_run)
    return {
        "mixture": (mixture / mixture.sum()).tolist(), "reference_loss": reference.tolist(),
        "final_weights": dro.trace[-1].tolist(), "domains": list(space.names),
        "compute": {"proxy_runs": 2, "tokens": int(sum(r.tokens.sum() for r in runs)),
                    "proxy_seconds": round(sum(r.seconds for r in runs), 2)},
    }
