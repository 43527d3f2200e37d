"""Minari publication of a staged collection, and the checks a consumer runs on a loaded dataset.

The dataset id is `dmix/<scenario>-<preset>/<name>-v1` (v1: source fields fed back by held-out text). Besides Minari's own fields, the
metadata key `dmix` carries what agents and the leaderboard need: the scenario (so
`recover_environment()` and `dataset_scenario()` rebuild the same task), domain and field
names, `p_0`, `p*`, per-field feedback mean/std over the dataset, and each episode's
quality subset (the N of Algorithm 1) and env seed.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec

from dmix_gym.data.build import build_data
from dmix_gym.env import make_spaces
from dmix_gym.errors import ConfigError, MissingFileError
from dmix_gym.scenario import Scenario

from .collection import DATASET_VERSION, EPISODE_PATTERN, SHIPPED, CollectionError, Plan, load_episode

INFO_KEYS = ("feedback", "domain_loss", "probes", "tokens", "mixture", "train_loss")  # timings are left out: wall-clock
METADATA_KEY = "dmix"


CONTACT = "the dmix issue tracker"  # Minari's author_email: any contact a dataset user can reach


REFERENCES_FILE = "references.json"  # a collection's Minari reference returns, once measured (benchmarks/minari_references.py)


def write_references(folder: str | Path, ref_min: float, ref_max: float, episodes: int, sources: dict[str, str]) -> Path:
    """Store the returns Minari normalises scores with (`minari.get_normalized_score`) beside a collection."""
    from dmix_gym.utils.atomic import write_json

    if not ref_max > ref_min:
        raise ConfigError(f"ref_max_score {ref_max} must exceed ref_min_score {ref_min}")
    path = Path(folder) / REFERENCES_FILE
    write_json(path, {"ref_min_score": float(ref_min), "ref_max_score": float(ref_max),
                      "num_episodes_average_score": int(episodes), "sources": sources})
    return path


def dataset_id(scenario_name: str, name: str, version: int = DATASET_VERSION) -> str:
    return f"dmix/{scenario_name}/{name}-v{version}"


def code_permalink() -> str:
    """The git commit this code runs from, when it runs from a checkout; else the package version."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        return f"dmix@{commit}"
    except (OSError, subprocess.CalledProcessError):
        from importlib.metadata import version

        return f"dmix=={version('dmix')}"


def env_spec(scenario: dict[str, Any]) -> EnvSpec:
    """The EnvSpec that rebuilds DataMix-v0 with this scenario (JSON-able kwargs only).

    Its `max_episode_steps` is the scenario's step count (the env truncates there itself); tools that
    rebuild the env from a dataset, such as `d3rlpy.datasets.get_minari`, need it.
    """
    return EnvSpec(id="DataMix-v0", entry_point="dmix_gym.env:DataMixEnv", max_episode_steps=Scenario.from_dict(scenario).train.max_steps,
                   kwargs={"scenario": scenario, "preset": None, "progress": False})


class SpecOnly(gym.Env):
    """An env that is only its spec and spaces: what Minari reads from `env` when the spaces are given.

    Given an EnvSpec, `minari.create_dataset_from_buffers` builds the env (`gym.make`) only to read spaces it already
    has, and a DataMix-v0 pretrains its base proxy on a cold cache: minutes per draw that publication threw away."""

    def __init__(self, spec: EnvSpec, observation_space: gym.Space, action_space: gym.Space):
        self.spec, self.observation_space, self.action_space = spec, observation_space, action_space

    def step(self, action):
        raise TypeError(f"SpecOnly carries {self.spec.id}'s spec for Minari and cannot step; gym.make(spec) builds the env")


def staged_episodes(folder: Path) -> list[dict[str, np.ndarray]]:
    """Every staged episode of a collection, in index order."""
    paths = sorted(folder.glob(EPISODE_PATTERN))
    if not paths:
        raise CollectionError(f"no staged episodes in {folder}; run `dmix collect` first")
    return [load_episode(p) for p in paths]


def publish(folder: str | Path, name: str | None = None, author: str = "dmix", description: str | None = None,
            overwrite: bool = False, partial: bool = False, contact: str = CONTACT):
    """Turn a staged collection into a local Minari dataset; return the MinariDataset.

    A collection with planned episodes still missing is refused unless `partial` is set.
    """
    import minari
    from minari.data_collector import EpisodeBuffer

    folder = Path(folder)
    plan = Plan.from_json(json.loads((folder / "plan.json").read_text()))
    scenario = Scenario.from_dict(plan.scenario)
    episodes = staged_episodes(folder)
    if len(episodes) < len(plan.episodes) and not partial:
        raise CollectionError(f"{folder} holds {len(episodes)} of {len(plan.episodes)} planned episodes; finish it with "
                              "`dmix collect` (same arguments) or publish what is there with --partial")
    name = name or plan.name
    ident = dataset_id(scenario.name, name)
    existing = finished_dataset(ident)
    if existing is not None:
        if not overwrite:
            if is_published(existing, plan, episodes, folder):
                return existing  # a finished collection re-run (a resumed script) republishes nothing
            raise FileExistsError(f"Minari dataset {ident} exists and differs from {folder}; pass overwrite=True "
                                  "(--overwrite) to replace it")
        minari.delete_dataset(ident)

    buffers = [
        EpisodeBuffer(
            id=i, seed=int(e["seed"]), observations=e["observations"], actions=e["actions"],
            rewards=e["rewards"].tolist(), terminations=e["terminations"].tolist(), truncations=e["truncations"].tolist(),
            infos={key: e[f"info/{key}"] for key in INFO_KEYS},
        )
        for i, e in enumerate(episodes)
    ]
    feedback = np.concatenate([e["info/feedback"] for e in episodes])
    spec = env_spec(plan.scenario)
    # The built data (cached by the collection) gives the spaces; no proxy or base checkpoint is needed.
    shards = build_data(scenario.data, progress=False)
    space = shards.domain_space
    action_space, observation_space = make_spaces(space)
    dataset = minari.create_dataset_from_buffers(
        dataset_id=ident,
        buffer=buffers,
        env=SpecOnly(spec, observation_space, action_space),
        eval_env=spec,
        algorithm_name="dmix-algorithm1",
        author=author,
        author_email=contact,
        code_permalink=code_permalink(),
        action_space=action_space,
        observation_space=observation_space,
        description=description or (
            f"DataMix-v0 trajectories of scenario {scenario.name}: mixtures planned by Algorithm 1 (inductive scoring) "
            f"at candidate counts {sorted({int(e['quality']) for e in episodes})}, collected by training a real proxy LM."
        ),
        requirements=["dmix"],
    )
    references = folder / REFERENCES_FILE
    if references.is_file():  # set directly: Minari would otherwise roll a random policy out in the env to estimate them
        refs = json.loads(references.read_text())
        dataset.storage.update_metadata({key: refs[key] for key in ("ref_min_score", "ref_max_score", "num_episodes_average_score")})
    dataset.storage.update_metadata({METADATA_KEY: {
        "scenario": plan.scenario,
        "collection": plan.name,
        "fields": list(space.fields),
        "probes": list(shards.probe_pairs),
        "target_fields": list(space.target_fields),
        "domains": list(space.names),
        "field_of": [int(f) for f in space.field_of],
        "p0": [float(x) for x in space.p0],
        "p_star": [float(x) for x in space.p_star],
        "feedback_mean": feedback.mean(0).tolist(),
        "feedback_std": feedback.std(0).tolist(),
        "episode_quality": [int(e["quality"]) for e in episodes],
        "episode_seed": [int(e["seed"]) for e in episodes],
        "plan_index": [int(e["index"]) for e in episodes],
    }})
    return minari.load_dataset(ident)


def finished_dataset(ident: str):
    """The local Minari dataset `ident`, or None. One whose publication was cut short (a killed process: its folder
    exists, but Minari does not list it, having no metadata yet, or it lacks the dmix metadata `publish` writes last)
    is removed and None returned: everything in it is in the staged collection, so publishing again loses nothing,
    where a resumed collection would otherwise stop at it for good."""
    import shutil
    import warnings

    import minari
    from minari.storage import get_dataset_path

    path = Path(get_dataset_path(ident))
    if not path.exists():
        return None
    if ident in minari.list_local_datasets():
        dataset = minari.load_dataset(ident)
        if METADATA_KEY in dataset.storage.metadata:
            return dataset
    warnings.warn(f"Minari dataset {ident} at {path} was never finished (a publish cut short); publishing it again",
                  stacklevel=2)
    shutil.rmtree(path)
    return None


def is_published(dataset, plan: Plan, episodes: list[dict], folder: Path) -> bool:
    """Whether a published dataset holds exactly this collection: its scenario, episodes and reference scores."""
    meta = dataset.storage.metadata
    dmix = meta.get(METADATA_KEY, {})
    same = (dmix.get("scenario") == plan.scenario
            and dmix.get("plan_index") == [int(e["index"]) for e in episodes]
            and dmix.get("episode_seed") == [int(e["seed"]) for e in episodes])
    references = folder / REFERENCES_FILE
    if same and references.is_file():
        refs = json.loads(references.read_text())
        same = all(meta.get(key) == refs[key] for key in ("ref_min_score", "ref_max_score"))
    return same


# --- what consumers use ------------------------------------------------------------------------


def shipped_collection(ident: str) -> Path | None:
    """The collection folder shipped in the package that publishes as dataset `ident`, if there is one."""
    if not ident.startswith("dmix/") or ident.count("/") != 2:
        return None
    folder = SHIPPED / ident.removeprefix("dmix/").replace("/", "-")
    return folder if (folder / "plan.json").is_file() else None


def load_dmix_dataset(ident: str, install: bool = True):
    """A dmix Minari dataset by id. One the package ships (plan and episodes) is published locally on first use."""
    import minari

    if ident not in minari.list_local_datasets():
        folder = shipped_collection(ident) if install else None
        if folder is None:
            local = sorted(k for k in minari.list_local_datasets() if k.startswith("dmix/"))
            raise MissingFileError(f"no Minari dataset {ident!r} on this machine (local dmix datasets: {local or 'none'}); "
                                   f"build it with `dmix collect` or `dmix publish`")
        return publish(folder)
    return minari.load_dataset(ident)


def dmix_metadata(dataset) -> dict[str, Any]:
    """The `dmix` metadata of a loaded Minari dataset; an error if it is not a dmix dataset."""
    metadata = dataset.storage.metadata
    if METADATA_KEY not in metadata:
        raise ConfigError(f"Minari dataset {metadata.get('dataset_id')!r} has no {METADATA_KEY!r} metadata: not a dmix dataset")
    return metadata[METADATA_KEY]


def dataset_scenario(dataset):
    """The Scenario a dmix dataset was collected on."""
    return Scenario.from_dict(dmix_metadata(dataset)["scenario"])


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        return {k: v for key, value in tree.items() for k, v in _flatten(value, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): tree}


def check_scenario(dataset, scenario) -> None:
    """Raise ValueError, naming what differs, when a dataset was collected on another scenario than `scenario`."""
    collected = _flatten(json.loads(dataset_scenario(dataset).to_json()))
    wanted = _flatten(json.loads(scenario.to_json()))
    differences = sorted(k for k in collected.keys() | wanted.keys() if collected.get(k) != wanted.get(k))
    if differences:
        ident = dataset.storage.metadata.get("dataset_id")
        raise ConfigError(f"dataset {ident!r} was collected on scenario {dataset_scenario(dataset).name!r}, which differs from "
                         f"the env's {scenario.name!r} in: {', '.join(differences[:8])}")


def episodes_of_quality(dataset, quality: int) -> list[int]:
    """Episode ids of one quality subset (the N of Algorithm 1)."""
    return [i for i, q in enumerate(dmix_metadata(dataset)["episode_quality"]) if q == quality]
