"""Does an agent act on the feedback's level, which moves between scenarios, or on its changes?

Another proxy model or source corpus starts an episode with the source field's feedback 0.1 to 0.3 nats
elsewhere (dmix-bench-v1: unseen-model 0.13 lower, unseen-source 0.25 lower), while the reward is made of
changes alone. This probe replays every episode of the protocol's dataset with the source fields'
feedback shifted by a constant and records each agent's mean target share over the steps; an agent
that reads changes acts the same at every shift. No env runs and no seed is drawn: only the dataset's
logged observations and the agents' forward passes, so it can inform a choice without evaluation seeds.

    python benchmarks/feedback_shift.py                        # the protocol's shipped agents
    python benchmarks/feedback_shift.py --agents runs/agents-cpu-v1-relative/cql.pt runs/agents-cpu-v1/cql.pt
    python benchmarks/feedback_shift.py --levels-of llama-10x --levels-of path/to/hf-model

`--levels-of MODEL` adds a column where every field's feedback is moved by MODEL's start level minus the proxy's
(one env reset of each at the protocol's training scenario: `llama-10x`, or a Hugging Face model directory), the
offset an agent meets when it drives that model's continual pre-training (`dmix cpt`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "feedback_shift"
ALGOS = ("sft", "cql", "iql", "td3bc", "bc")  # the shipped agents with a Transformer body (the DT acts through d3rlpy)


def target_shares(agent, episodes: list[np.ndarray], shift) -> float:
    """Mean target share of the agent's mixtures at every logged step, the feedback moved by `shift`: a number for the
    source field alone, or one per field."""
    d, k = agent.domain_space.size, len(agent.domain_space.fields)
    offset = np.asarray(shift, np.float32) if np.ndim(shift) else np.eye(k, dtype=np.float32)[0] * shift
    shares = []
    for observations in episodes:
        moved = observations.copy()
        moved[:, d:d + k] += offset  # the feedback, right after the mixture
        shares.append(agent.window_target_shares(agent.state_tokens(moved)))
    return float(np.mean(np.concatenate(shares)))


def start_levels(task, model: str | None) -> np.ndarray:
    """(K,) the feedback of a model's start weights on a task's scenario: the proxy's (None), `llama-10x`'s (the env's
    10x shape, from its own base), or a Hugging Face model directory's."""
    import gymnasium as gym

    import dmix_gym  # noqa: F401
    from cpt.models import LLAMA_10X_PROXY
    from dmix_gym.scenario import override

    scenario = task.make_scenario()
    if model == "llama-10x":
        scenario, model = override(scenario, **LLAMA_10X_PROXY), None
    env = gym.make("DataMix-v0", scenario=scenario.to_dict(), model=model, progress=True)
    _, info = env.reset(seed=0)
    return np.asarray(info["feedback"], np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocol", default="dmix-bench-v2")
    parser.add_argument("--agents", type=Path, nargs="*", help="saved agents (.pt); default: the protocol's shipped ones")
    parser.add_argument("--shifts", type=float, nargs="+", default=[0.13, 0.0, -0.05, -0.13, -0.25, -0.5])
    parser.add_argument("--levels-of", action="append", default=[], metavar="MODEL",
                        help="a column at MODEL's start levels minus the proxy's, every field (llama-10x or an HF directory)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    from agents.agent import TransformerAgent
    from datasets_builder.publish import load_dmix_dataset
    from dmix_gym.utils.atomic import write_json
    from leaderboard.official import official_agent
    from leaderboard.protocol import get_protocol

    protocol = get_protocol(args.protocol)
    paths = args.agents or [official_agent(f"{args.protocol}/{algo}") for algo in ALGOS]
    episodes = [np.asarray(e.observations[:-1], np.float32) for e in load_dmix_dataset(protocol.dataset).iterate_episodes()]

    columns: dict[str, object] = {f"{s:+.2f}": s for s in args.shifts}
    levels = {}
    if args.levels_of:
        proxy = start_levels(protocol.tasks[0], None)
        for model in args.levels_of:
            levels[model] = (start_levels(protocol.tasks[0], model) - proxy).tolist()
            columns[f"{Path(model).name} levels"] = levels[model]
            print(f"{model}: start feedback minus the proxy's {np.round(levels[model], 3).tolist()}", flush=True)
    rows = []
    for path in paths:
        agent = TransformerAgent.load(path)
        shares = {name: target_shares(agent, episodes, shift) for name, shift in columns.items()}
        rows.append({"agent": str(path), "algo": agent.meta.get("algo", agent.name), "features": agent.config.features,
                     "target_share": shares})
        print(f"{rows[-1]['algo']:>6} ({agent.config.features}): " + "  ".join(f"{s}: {v:.2f}" for s, v in shares.items()),
              flush=True)
    header = " | ".join(columns)
    lines = [f"| agent | features | {header} |", "| --- | --- |" + " ---: |" * len(columns)]
    lines += [f"| {r['algo']} | {r['features']} | " + " | ".join(f"{v:.2f}" for v in r["target_share"].values()) + " |" for r in rows]
    name = args.protocol if args.agents is None else f"{args.protocol}-custom"
    write_json(args.out / f"{name}.json", {"protocol": args.protocol, "dataset": protocol.dataset, "episodes": len(episodes),
                                          "shifts": args.shifts, "levels": levels, "rows": rows})
    (args.out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
