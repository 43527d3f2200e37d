"""DataMix-v0: a Gymnasium env whose step trains a real proxy LM on the mixture it is given."""

from gymnasium.envs.registration import register

from .env import DataMixEnv, normalise_action
from .scenario import PRESETS, ProxyConfig, Scenario, TrainConfig, make_scenario
from .wrappers import CollapseDomains, HistoryWindow

# A string entry point and JSON-able kwargs, so Minari can store and rebuild the spec.
# No max_episode_steps: the env truncates itself at its scenario's max_steps, whatever the preset.
register(
    id="DataMix-v0",
    entry_point="dmix_gym.env:DataMixEnv",
    kwargs={"scenario": "general-math", "preset": "cpu"},
)

__all__ = [
    "PRESETS", "CollapseDomains", "DataMixEnv", "HistoryWindow", "ProxyConfig", "Scenario",
    "TrainConfig", "make_scenario", "normalise_action",
]
