"""Why does an agent trained on proxy episodes act differently on a larger model? Replay its `dmix cpt` runs.

`benchmarks/cpt_scale.py` records every step of a 10x run: the agent's mixture, the tokens drawn per domain and the
feedback. From those and the run's start feedback this script rebuilds the exact observations the agent saw (a check:
the agent's mixture on them must equal the logged one), then asks, step by step:

- **Is the state inside the agent's training data?** Its feedback features against the 1st-99th percentile of the
  same features, at the same step, over every transition of the dataset the agent was trained on.
- **Does clamping the feedback to that range steer it back?** The agent's target share on the same windows with
  every token's feedback clipped to its step's range: a deployment-time guard that needs no retraining.

No env steps and no seed are drawn: only the logged records and the agent's forward passes.

    python benchmarks/cpt_support.py                                 # the shipped IQL agent on its committed 10x runs
    python benchmarks/cpt_support.py --agent official:dmix-bench-v2/cql --runs iql
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cpt_scale import RESULTS, load_results  # noqa: E402

QUANTILES = (1.0, 99.0)


def step_support(data, num_domains: int, num_fields: int) -> tuple[np.ndarray, np.ndarray]:
    """(T + 1, K) low and high percentiles of the feedback features of the dataset's states, by step."""
    current = data.windows[:, -1, :]
    step = np.rint(current[:, num_domains + num_fields] * data.scenario["train"]["max_steps"]).astype(int)
    features = current[:, num_domains:num_domains + num_fields]
    steps = range(step.max() + 1)
    low = np.stack([np.percentile(features[step == t], QUANTILES[0], axis=0) for t in steps])
    high = np.stack([np.percentile(features[step == t], QUANTILES[1], axis=0) for t in steps])
    return low, high


def observations(records: list[dict], start: list[float], env) -> np.ndarray:
    """(T + 1, obs_dim) the observations a DataMix-v0 `env` of the run's scenario would have given: reset's, then one
    after each recorded step."""
    from dmix_gym.env import normalise_action

    sampler = env.sampler
    sampler.reset(np.random.default_rng(0))  # which sequences are drawn is irrelevant: only their counts move the data left
    rows = [np.concatenate([env.p0, start, [0.0], sampler.field_fraction_left()[env.target_index]])]
    for r in records:
        sampler.draw(np.asarray(r["tokens"], np.int64) // env.shards.seq_len)
        rows.append(np.concatenate([normalise_action(r["policy_mixture"], env.num_domains), r["feedback"],
                                    [r["step"] / env.max_steps], sampler.field_fraction_left()[env.target_index]]))
    return np.asarray(rows, np.float32)


def replay(agent, obs: np.ndarray, low: np.ndarray, high: np.ndarray) -> list[dict]:
    """Per step t ≥ 1: the state's feedback features, how many lie outside the support, and the agent's target share
    on the windows as they were and with every token's feedback clamped to its step's support."""
    d, k = agent.domain_space.size, len(agent.domain_space.fields)
    tokens = agent.state_tokens(obs)
    clamped = tokens.copy()
    steps = np.minimum(np.arange(len(tokens)), len(low) - 1)
    clamped[:, d:d + k] = np.clip(tokens[:, d:d + k], low[steps], high[steps])
    shares = [agent.window_target_shares(x) for x in (tokens, clamped)]  # row t: the choice for step t + 1
    rows = []
    for t in range(1, len(tokens) - 1):
        features = tokens[t, d:d + k]
        outside = int(np.sum((features < low[steps[t]]) | (features > high[steps[t]])))
        rows.append({"step": t, "features": features.round(3).tolist(), "support_low": low[steps[t]].round(3).tolist(),
                     "support_high": high[steps[t]].round(3).tolist(), "fields_outside": outside,
                     "target_share": round(float(shares[0][t]), 4),
                     "clamped_target_share": round(float(shares[1][t]), 4)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agent", default="official:dmix-bench-v2/iql", help="a policy spec naming a Transformer agent")
    parser.add_argument("--runs", help="the policy name of the recorded runs to replay (default: the agent's algo)")
    parser.add_argument("--model", default="llama-10x", help="the model the runs trained (its start-<model>.json)")
    args = parser.parse_args()

    import gymnasium as gym

    import dmix_gym  # noqa: F401
    from agents.agent import TransformerAgent
    from agents.offline_data import dataset_ids, load_offline
    from dmix_gym.errors import ConfigError
    from dmix_gym.utils.atomic import write_json
    from leaderboard.registry import load_policy

    agent = load_policy(args.agent)
    if not isinstance(agent, TransformerAgent):
        raise ConfigError(f"{args.agent!r} is a {type(agent).__name__}, not a Transformer agent with state tokens to replay")
    name = args.runs or agent.meta.get("algo", agent.name)
    runs = load_results().get(name)
    if not runs:
        raise ConfigError(f"no recorded runs named {name!r} in {RESULTS}; run benchmarks/cpt_scale.py first")
    start = json.loads((RESULTS / f"start-{args.model}.json").read_text())["feedback"]

    d, k = agent.domain_space.size, len(agent.domain_space.fields)
    data = load_offline(dataset_ids(agent.meta["dataset"]), agent.config.window, agent.config.features,
                        agent.config.target_left)
    low, high = step_support(data, d, k)
    env = gym.make("DataMix-v0", scenario=data.scenario, progress=False).unwrapped

    result = {"agent": args.agent, "dataset": agent.meta["dataset"], "model": args.model, "quantiles": QUANTILES, "runs": {}}
    target = np.asarray(agent.domain_space.field_of) != 0  # the source field comes first
    for seed, records in sorted(runs.items()):
        steps = replay(agent, observations(records, start, env), low, high)
        logged = [np.asarray(r["policy_mixture"])[target].sum() for r in records[1:]]
        worst = max(abs(s["target_share"] - x) for s, x in zip(steps, logged))
        if worst > 1e-3:
            raise ConfigError(f"seed {seed}: the rebuilt observations give target shares {worst:.4f} off the logged ones; "
                              f"the runs were not made by {args.agent!r} from start {start}")
        result["runs"][str(seed)] = steps
        print(f"seed {seed}: rebuilt exactly (largest share error {worst:.1e})", flush=True)

    lines = ["| step | features (source, target), std from start | training support, 1st–99th pct | fields outside "
             "| target share | clamped |", "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for t, rows in enumerate(zip(*result["runs"].values()), start=1):
        features = np.mean([r["features"] for r in rows], axis=0)
        support = ", ".join(f"{lo:+.2f}..{hi:+.2f}" for lo, hi in zip(rows[0]["support_low"], rows[0]["support_high"]))
        outside = f"{sum(r['fields_outside'] for r in rows)} of {k * len(rows)}"
        shares = [np.mean([r[key] for r in rows]) for key in ("target_share", "clamped_target_share")]
        lines.append(f"| {t} | {features[0]:+.2f}, {features[1]:+.2f} | {support} | {outside} | {shares[0]:.2f} | {shares[1]:.2f} |")
    write_json(RESULTS / f"support-{name}.json", result)
    (RESULTS / f"support-{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
