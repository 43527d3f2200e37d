"""Agents: the Transformer Data Mixing Agent, SFT warm-up, CQL through d3rlpy, and the policy interface."""

from .policy import Episode, History, Policy, ScenarioInfo, rollout
from .registry import load_policy

__all__ = ["Episode", "History", "Policy", "ScenarioInfo", "load_policy", "rollout"]
