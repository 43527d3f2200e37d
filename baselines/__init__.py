"""Baselines behind the policy interface: Naive, Uniform, Start-state, RegMix, DBL."""

from __future__ import annotations

from dmix_gym.errors import ConfigError
from dmix_gym.policy import Policy

BASELINES = ("naive", "uniform", "start-state", "random", "regmix", "dbl")


def make_baseline(name: str) -> Policy:
    """A baseline by name (with or without the `baseline:` prefix), with its default configuration."""
    kind = name.removeprefix("baseline:")
    if kind in ("naive", "uniform", "start-state"):
        from .static import StaticPolicy

        return StaticPolicy(kind)
    if kind == "random":
        from .static import RandomMixture

        return RandomMixture()
    if kind == "regmix":
        from .regmix import RegMix

        return RegMix()
    if kind == "dbl":
        from .dbl import DBL

        return DBL()
    raise ConfigError(f"unknown baseline {name!r}; choose one of {', '.join('baseline:' + b for b in BASELINES)}")


__all__ = ["BASELINES", "make_baseline"]
