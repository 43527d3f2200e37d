"""A static mixture over domains, written by field role so that it applies to any scenario.

The spec `domains:source=0.85,target/c01-frac-boxed=0.15` gives the source field 0.85, spread over its domains like
p_0, and puts 0.15 on the target domain named `c01-frac-boxed`. Keys are a role (`source`, `target`) or a role and
a domain name within that role's fields (`source/<domain>`, `target/<domain>`); weights are normalised to sum to 1.
A role's own weight spreads over its domains in their natural proportions (p_0 for the source field, p* for the
target fields). A named domain the scenario does not have gives its weight to its role, spread naturally: so a
mixture found on one task transfers by domain name where another task shares the domain, and at p_0 / p* within a
field whose domains differ (`dmix search` writes this spec; `dmix cpt --policy` and the leaderboard take it).

A spec ending in `;target-share=S1,S2,...` is a schedule over the same splits: the weights give only how each role
spreads over its domains, and the target roles' share follows a piecewise-linear schedule through those shares over the
episode, as `schedule:target-share=` does on the line (`DomainSchedule`).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from dmix_gym.data.domains import DomainSpace
from dmix_gym.errors import ConfigError
from dmix_gym.policy import History, Policy, ScenarioInfo
from dmix_gym.utils.atomic import write_json

from .static import parse_knots, share_at, step_progress

PREFIX = "domains:"
SCHEDULE = ";target-share="
ROLES = ("source", "target")
_KEY = re.compile(r"^(source|target)(/[^=,/]+)?$")


def parse_domain_weights(text: str) -> dict[str, float]:
    """{key: weight} from `source=0.85,target/c01-frac-boxed=0.15` (with or without the `domains:` prefix)."""
    body = text.removeprefix(PREFIX)
    weights: dict[str, float] = {}
    for item in filter(None, body.split(",")):
        key, sep, value = item.partition("=")
        key = key.strip()
        try:
            weight = float(value)
        except ValueError:
            weight = float("nan")
        if not sep or not _KEY.match(key) or not np.isfinite(weight) or weight < 0:
            raise ConfigError(f"{text!r}: {item!r} is not <role>[/<domain>]=<weight>, with role source or target "
                              "and a weight >= 0 (e.g. domains:source=0.85,target/c01-frac-boxed=0.15)")
        if key in weights:
            raise ConfigError(f"{text!r}: {key!r} is given twice")
        weights[key] = weight
    if not weights or sum(weights.values()) <= 0:
        raise ConfigError(f"{text!r}: a domain mixture needs at least one positive weight")
    return weights


def domain_spec(weights: dict[str, float], digits: int = 4) -> str:
    """The spec of a domain mixture (keys in order, zero weights left out, weights rounded so labels repeat)."""
    kept = {k: round(float(w), digits) for k, w in weights.items() if round(float(w), digits) > 0}
    return PREFIX + ",".join(f"{k}={w:g}" for k, w in kept.items())


def role_of_domains(space: DomainSpace) -> np.ndarray:
    """'source' or 'target' for each domain of a domain space (the source field is field 0)."""
    return np.where(np.asarray(space.field_of) == 0, "source", "target")


def local_names(space: DomainSpace) -> list[str]:
    """Each domain's name within its field (`general/c00-x` -> `c00-x`; a one-domain field's name is the field's)."""
    return [name.split("/", 1)[-1] for name in space.names]


def natural_split(space: DomainSpace, role: str) -> np.ndarray:
    """A role's domains in their natural proportions (p_0 for the source, p* for the targets), as a mixture."""
    p = np.asarray(space.p0 if role == "source" else space.p_star, np.float64) * (role_of_domains(space) == role)
    if p.sum() <= 0:
        raise ConfigError(f"the domain space has no {role} domains with weight: {list(space.names)}")
    return p / p.sum()


def resolve_domain_weights(weights: dict[str, float], space: DomainSpace) -> np.ndarray:
    """The mixture (D,) a domain spec gives in a domain space; names it lacks fall back to their role's natural split."""
    roles, names = role_of_domains(space), local_names(space)
    mixture = np.zeros(space.size)
    for key, weight in weights.items():
        role, _, domain = key.partition("/")
        matches = (roles == role) & (np.asarray(names) == domain) if domain else np.zeros(space.size, bool)
        if matches.any():
            mixture += weight * matches / matches.sum()
        else:
            mixture += weight * natural_split(space, role)
    return mixture / mixture.sum()


class DomainMixture(Policy):
    """Holds one domain mixture, given by role and domain name (see the module docstring), at every step."""

    def __init__(self, weights: dict[str, float] | str):
        self.weights = parse_domain_weights(weights) if isinstance(weights, str) else dict(weights)
        self.name = domain_spec(self.weights, digits=6)
        parse_domain_weights(self.name)  # the same checks for a dict

    def reset(self, info: ScenarioInfo) -> None:
        super().reset(info)
        self.mixture = resolve_domain_weights(self.weights, info.domain_space)

    def act(self, history: History) -> np.ndarray:
        return self.mixture

    def save(self, path: str | Path) -> Path:
        write_json(path, {"policy": self.name})
        return Path(path)


def role_split(mixture: np.ndarray, space: DomainSpace, role: str) -> np.ndarray:
    """How a mixture spreads one role's weight over its domains (summing to 1); the natural split where it gives none."""
    part = np.asarray(mixture, np.float64) * (role_of_domains(space) == role)
    return part / part.sum() if part.sum() > 0 else natural_split(space, role)


def target_share(weights: dict[str, float]) -> float:
    """The share a domain spec gives the target roles."""
    return sum(w for k, w in weights.items() if k.split("/")[0] == "target") / sum(weights.values())


def schedule_spec(weights: dict[str, float], knots: tuple[float, ...]) -> str:
    """The spec of a domain schedule: the splits of `weights`, the target share through `knots`."""
    return domain_spec(weights, digits=6) + SCHEDULE + ",".join(f"{k:g}" for k in knots)


class DomainSchedule(Policy):
    """The splits of a domain spec within each role, with the target share on a piecewise-linear schedule: step t of
    T (1-based) sits at progress (t - 1) / (T - 1), as in `TargetSchedule`. The family the v3 references' schedule
    search explores around the static domain optimum."""

    def __init__(self, spec: str):
        weights, sep, knots = spec.partition(SCHEDULE)
        if not sep:
            raise ConfigError(f"{spec!r}: a domain schedule is <domain spec>{SCHEDULE}S1,S2,... "
                              f"(e.g. domains:source=0.85,target/c01-frac-boxed=0.15{SCHEDULE}0.3,0.1)")
        self.weights = parse_domain_weights(weights)
        try:
            self.knots = parse_knots(knots)
        except ConfigError as error:
            raise ConfigError(f"{spec!r}: {error}") from None
        self.name = schedule_spec(self.weights, self.knots)

    def reset(self, info: ScenarioInfo) -> None:
        super().reset(info)
        space = info.domain_space
        mixture = resolve_domain_weights(self.weights, space)
        self.source, self.target = role_split(mixture, space, "source"), role_split(mixture, space, "target")

    def act(self, history: History) -> np.ndarray:
        share = share_at(self.knots, step_progress(len(history), self.info.max_steps))
        return (1 - share) * self.source + share * self.target

    def save(self, path: str | Path) -> Path:
        write_json(path, {"policy": self.name})
        return Path(path)


class WithinFieldSplits(Policy):
    """A policy of a fixed domain space (an agent) whose fields' shares, where the env's domains differ from its own
    and are bridged through per-field shares (`dmix_gym.policy.adapt_env`), spread over the env's domains like a domain
    spec rather than like p_0 / p*: e.g. an agent of the per-field space, trained across scenarios, holding the
    training task's domain optimum within each field while it chooses the fields' shares. Spec
    `<policy spec>@<domain spec>` (`leaderboard.registry`)."""

    def __init__(self, inner: Policy, splits: dict[str, float] | str):
        if getattr(inner, "domain_space", None) is None:
            raise ConfigError(f"{inner.name!r} adapts to any domain space itself; within-field splits apply to a policy of "
                              "a fixed domain space (an agent)")
        self.inner = inner
        self.weights = parse_domain_weights(splits) if isinstance(splits, str) else dict(splits)
        self.domain_space = inner.domain_space
        self.name = f"{inner.name}@{domain_spec(self.weights, digits=6)}"

    def field_splits(self, space: DomainSpace) -> np.ndarray:
        """The (D,) mixture whose within-field proportions spread each field's share in `space`."""
        return resolve_domain_weights(self.weights, space)

    def prepare(self, env, progress: bool = True) -> None:
        self.inner.prepare(env, progress)

    def reset(self, info: ScenarioInfo) -> None:
        super().reset(info)
        self.inner.reset(info)

    def act(self, history: History) -> np.ndarray:
        return self.inner.act(history)

    def compute(self) -> dict:
        return self.inner.compute()
