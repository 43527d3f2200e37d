"""Agents: the Transformer Data Mixing Agent, its SFT warm-up, and offline RL from it through d3rlpy (CQL, IQL,
TD3+BC, BC), plus a Decision Transformer.

Every agent is a `dmix_gym.Policy`; `leaderboard.registry.load_policy` loads a saved one by path.
"""

from .agent import TransformerAgent
from .networks import AgentConfig
from .offline_data import OfflineData, load_offline

__all__ = ["AgentConfig", "OfflineData", "TransformerAgent", "load_offline"]
