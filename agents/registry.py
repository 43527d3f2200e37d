"""Policies by name: `baseline:<name>`, or the path of a saved agent or baseline."""

from __future__ import annotations

import json
from pathlib import Path

from .policy import Policy


def load_policy(spec: str | Path) -> Policy:
    """`baseline:naive|uniform|start-state|regmix|dbl`, a saved agent (.pt), or a saved baseline (.json)."""
    text = str(spec)
    if text.startswith("baseline:"):
        from baselines import make_baseline

        return make_baseline(text)
    path = Path(text)
    if not path.exists():
        raise FileNotFoundError(f"no policy {text!r}: not a baseline:<name> and no such file")
    if path.suffix == ".json":
        saved = json.loads(path.read_text())
        if "policy" not in saved:
            raise ValueError(f"{path} is not a saved dmix policy (no 'policy' key)")
        policy = load_policy(saved["policy"])
        if "config" in saved:
            policy.config = type(policy.config)(**saved["config"])
        return policy
    from .agent import TransformerAgent

    return TransformerAgent.load(path)
