"""DataMix-v0: a Gymnasium env whose step trains a real proxy LM on the mixture it is given.

The bottom layer of dmix: the MDP and everything it needs to build its world (`dmix_gym.data`: fields,
corpora, tokenizer, domains, shards, evaluation sets), the proxy LM, its trainer, the feedback, the
wrappers, and the `Policy`/`rollout` interface every method implements. `dmix_gym.utils` holds the
generic pieces (crash-safe writes, paths, worker pools) every layer above uses.
"""

from gymnasium.envs.registration import register

from .env import DataMixEnv, normalise_action
from .policy import Episode, History, Policy, Replay, ScenarioInfo, rollout, rollout_vector
from .scenario import PRESETS, ProxyConfig, Scenario, TrainConfig, make_scenario
from .vector import DataMixVectorEnv
from .wrappers import CollapseDomains, HistoryWindow

# A string entry point and JSON-able kwargs, so Minari can store and rebuild the spec.
# No max_episode_steps: the env truncates itself at its scenario's max_steps, whatever the preset.
register(
    id="DataMix-v0",
    entry_point="dmix_gym.env:DataMixEnv",
    vector_entry_point="dmix_gym.vector:DataMixVectorEnv",
    kwargs={"scenario": "general-math", "preset": "cpu"},
)

__all__ = [
    "PRESETS", "CollapseDomains", "DataMixEnv", "DataMixVectorEnv", "Episode", "History", "HistoryWindow", "Policy",
    "ProxyConfig", "Replay", "Scenario", "ScenarioInfo", "TrainConfig", "make_scenario", "normalise_action", "rollout",
    "rollout_vector",
]
