"""Baselines behind the policy interface: static mixtures, RegMix, DBL, DoReMi, Data Mixing Laws, ODM, Aioli, natural,
and a regression on the logged episodes (no proxy runs)."""

from __future__ import annotations

from dmix_gym.errors import ConfigError
from dmix_gym.policy import Policy

BASELINES = ("naive", "uniform", "start-state", "random", "natural", "regmix", "dbl", "doremi", "mixing-laws", "odm", "aioli",
             "logged-regression")


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
    if kind == "natural":
        from .natural import Natural

        return Natural()
    if kind == "doremi":
        from .doremi import DoReMi

        return DoReMi()
    if kind == "mixing-laws":
        from .mixing_laws import MixingLaws

        return MixingLaws()
    if kind == "odm":
        from .odm import ODM

        return ODM()
    if kind == "logged-regression":
        from .logged_regression import LoggedRegression

        return LoggedRegression()
    if kind == "aioli":
        from .aioli import Aioli

        return Aioli()
    raise ConfigError(f"unknown baseline {name!r}; choose one of {', '.join('baseline:' + b for b in BASELINES)}")


__all__ = ["BASELINES", "make_baseline"]
