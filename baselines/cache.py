"""What a baseline computes once per scenario (RegMix's fit, DBL's reference losses), cached as JSON."""

from __future__ import annotations

import json
from typing import Any, Callable

from dmix_gym.policy import ScenarioInfo
from dmix_gym.utils.atomic import stable_hash, write_json
from dmix_gym.utils.paths import resolve_cache_dir


def scenario_key(info: ScenarioInfo, **settings: Any) -> str:
    """Identity of a per-scenario result: the scenario and the settings that shape it. A user's model (`hf_model`) is
    left out: one-off fits are made on the scenario's proxy, and `dmix cpt` applies them to the large model."""
    scenario = {k: v for k, v in info.scenario.items() if k != "hf_model"}
    return stable_hash({"scenario": scenario, **settings, "version": 1})


def cached(env, kind: str, key: str, make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`<cache>/baselines/<kind>-<scenario>-<key>-<build>.json`, written from `make()` the first time.

    The build's id is part of the name: a result computed on another machine's build of the scenario is not reused.
    """
    base = env.unwrapped
    name = f"{kind}-{ScenarioInfo.from_env(base).scenario_name}-{key}-{base.shards.build_id}.json"
    path = resolve_cache_dir(base.cache_dir) / "baselines" / name
    if not path.exists():
        write_json(path, make())
    return json.loads(path.read_text())
