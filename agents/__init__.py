"""Agents: the Transformer Data Mixing Agent, its SFT warm-up and CQL through d3rlpy.

Every agent is a `dmix_gym.Policy`; `leaderboard.load_policy` loads a saved one by path.
"""

from .agent import TransformerAgent
from .networks import AgentConfig
from .offline import OfflineData, load_offline

__all__ = ["AgentConfig", "OfflineData", "TransformerAgent", "load_offline"]
