"""The offline datasets: trajectory planning (Algorithm 1), collection through DataMix-v0, Minari publication, reading back."""

from .collection import CollectionError, Plan, collect, make_plan, run_plan, staging_dir
from .publish import check_scenario, dataset_id, dataset_scenario, dmix_metadata, episodes_of_quality, publish
from .trajectories import QUALITY_LEVELS, PlannedEpisode, SamplerConfig, plan_episodes, sample_trajectories

__all__ = [
    "QUALITY_LEVELS", "CollectionError", "Plan", "PlannedEpisode", "SamplerConfig", "check_scenario", "collect",
    "dataset_id", "dataset_scenario", "dmix_metadata", "episodes_of_quality", "make_plan", "plan_episodes", "publish",
    "run_plan", "sample_trajectories", "staging_dir",
]
