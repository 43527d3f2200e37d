"""Dynamic Batch Loading (Sheared-LLaMA, Xia et al. 2023), as the Data Mixing Agent paper runs it (D.2).

After each step, the domains (or fields) whose held-out loss exceeds its reference loss the most
gain weight: w <- normalise(w * exp(eta * max(loss - ref, 0))). Reference losses: the base
model's loss for source-field domains, and the loss a model trained on the target field alone
(the Naive baseline) reaches at the end of an episode for target-field domains. They are computed
once per scenario and cached.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from dmix_gym.data.domains import DomainSpace, collapse, expand
from dmix_gym.policy import History, Policy, ScenarioInfo, rollout
from dmix_gym.utils.atomic import write_json

from .cache import cached, scenario_key
from .static import StaticPolicy


@dataclass(frozen=True)
class DBLConfig:
    eta: float = 1.0  # step size of the multiplicative update
    level: Literal["domain", "field"] = "domain"
    reference_seed: int = 0  # seed of the Naive episode that gives the target-field references


def dbl_update(weights: np.ndarray, losses: np.ndarray, reference: np.ndarray, eta: float) -> np.ndarray:
    """One DBL step: raise each weight by exp(eta * its excess loss over the reference), renormalise."""
    excess = np.maximum(np.asarray(losses, np.float64) - reference, 0.0)
    w = np.asarray(weights, np.float64) * np.exp(eta * excess)
    return w / w.sum()


def field_losses(losses: np.ndarray, space: DomainSpace) -> np.ndarray:
    """(K,) loss per field: the p0/p*-weighted mean of its domains' losses."""
    within = expand(np.ones(len(space.fields)), space)
    return collapse(np.asarray(losses) * within, space)


def balanced_start(space: DomainSpace) -> np.ndarray:
    """Every field an equal share, split within the field like p0 (source) or p* (targets)."""
    k = len(space.fields)
    return expand(np.full(k, 1.0 / k), space)


def reference_losses(base_loss: np.ndarray, naive_loss: np.ndarray, space: DomainSpace) -> np.ndarray:
    """(D,) the base model's loss on source domains, the Naive-trained model's loss on target domains."""
    source = np.asarray(space.field_of) == 0
    return np.where(source, base_loss, naive_loss)


class DBL(Policy):
    """Dynamic Batch Loading over the env's per-domain held-out losses."""

    name = "baseline:dbl"

    def __init__(self, config: DBLConfig = DBLConfig()):
        self.config = config
        self.references: dict[str, np.ndarray] = {}
        self.reference_runs: dict[str, dict] = {}  # the cached reference run of each scenario prepared

    def _key(self, info: ScenarioInfo) -> str:
        return scenario_key(info, seed=self.config.reference_seed)

    def prepare(self, env, progress: bool = True) -> None:
        """Compute (or read from the cache) the scenario's reference losses."""
        self.loss_space = env.unwrapped.domain_space  # losses are per domain of the env itself, whatever the wrappers
        key = self._key(ScenarioInfo.from_env(env.unwrapped))
        if key not in self.references:
            saved = cached(env, "dbl-reference", key, lambda: self._reference_run(env.unwrapped, progress))
            self.references[key] = np.asarray(saved["reference"])
            self.reference_runs[key] = saved

    def compute(self) -> dict[str, Any]:
        """The Naive reference episodes its references cost, one per scenario prepared."""
        runs = self.reference_runs.values()
        return {"proxy_runs": len(runs), "tokens": sum(r["naive_tokens"] for r in runs),
                "proxy_seconds": round(sum(r["naive_seconds"] for r in runs), 2)}

    def _reference_run(self, env, progress: bool) -> dict:
        """A Naive episode: the base model's losses at reset, the target-trained model's at the end."""
        naive = rollout(StaticPolicy("naive"), env, seed=self.config.reference_seed, progress=progress)
        reference = reference_losses(naive.domain_loss[0], naive.domain_loss[-1], env.domain_space)
        return {"scenario": ScenarioInfo.from_env(env).scenario_name, "reference": reference.tolist(),
                "base_loss": naive.domain_loss[0].tolist(),
                "naive_loss": naive.domain_loss[-1].tolist(), "naive_seconds": naive.seconds,
                "naive_tokens": int(naive.tokens.sum())}

    def reset(self, info: ScenarioInfo) -> None:
        super().reset(info)
        key = self._key(info)
        if key not in self.references or not hasattr(self, "loss_space"):
            raise RuntimeError("DBL needs its reference losses: call prepare(env) first (rollout() does)")
        self.reference = self.references[key]
        space = info.domain_space
        # Acting in the source-based space (through CollapseDomains) means acting per field.
        self.per_field = self.config.level == "field" or space.size == len(space.fields) < self.loss_space.size
        self.weights = np.full(len(space.fields), 1 / len(space.fields)) if self.per_field else balanced_start(space)

    def act(self, history: History) -> np.ndarray:
        space = self.info.domain_space
        if len(history) > 1:  # reset's losses are the base model's: nothing trained yet
            losses = np.asarray(history.infos[-1]["domain_loss"], np.float64)
            if self.per_field:
                self.weights = dbl_update(self.weights, field_losses(losses, self.loss_space),
                                          field_losses(self.reference, self.loss_space), self.config.eta)
            else:
                self.weights = dbl_update(self.weights, losses, self.reference, self.config.eta)
        if self.per_field and space.size != len(space.fields):
            return expand(self.weights, space)
        return self.weights

    def save(self, path: str | Path) -> Path:
        write_json(path, {"policy": self.name, "config": asdict(self.config)})
        return Path(path)
