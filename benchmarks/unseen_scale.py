"""The unseen-scale task (the generalisation issue): the in-distribution scenario with a proxy far larger than the one
every dataset was collected with, its own references, and the rows that must not collapse there.

1. References: the references' search (`leaderboard.recommend.search_mixture`, as `dmix search` runs it) on the task:
   the line's target share, then within-field domain splits; confirmed on fresh reference seeds.
2. Rows: each policy spec on the task's seeds (1,000,600 on: evaluation-like, apart from every protocol task's), scored
   by the protocol's objective and paired against `static-transfer` (the training task's best mixture, held).

The model defaults to the training space's held-out 384 x 8 shape (about 9.6x the `cpu` proxy's 1.8M parameters);
`--set KEY=VALUE` reshapes it. Every episode is logged as it ends (resumable); a GPU runs it as is (`--workers 1`).

    python benchmarks/unseen_scale.py --workers 2                    # references, then the rows
    python benchmarks/unseen_scale.py --rows-only --policy official:dmix-bench-v2/iql
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

OUT = ROOT / "benchmarks" / "results" / "unseen_scale"
RESULTS = ROOT / "benchmarks" / "results" / "leaderboard"  # committed snapshots, <protocol>.sqlite
MODEL = {"hidden_size": 384, "num_layers": 8, "num_heads": 6, "intermediate_size": 1024}  # held out by train-v1
SEED_OFFSET = 600  # rows' seeds: EVAL_SEED_BASE + 600 + i, apart from every protocol task's offsets (0..500)
ROWS = ("static-transfer", "baseline:uniform", "baseline:mixing-laws")


def static_transfer(protocol: str) -> str:
    """Static-transfer's mixture in the protocol's committed results snapshot (its training task's confirmed best)."""
    from leaderboard.protocol import get_protocol
    from leaderboard.recommend import static_transfer as transfer
    from leaderboard.store import Store

    resolved = get_protocol(protocol)
    spec = transfer(Store(RESULTS / f"{protocol}.sqlite").reference(resolved.version, resolved.training_task))
    if spec is None:
        raise SystemExit(f"{protocol}'s {resolved.training_task} references have no confirmed static mixture yet")
    return spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocol", default="dmix-bench-v3", help="whose objective, static-transfer and agents")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--set", dest="options", action="append", default=[], help="KEY=VALUE over the task's model")
    parser.add_argument("--policy", action="append", default=[], help="more rows (the best agent), repeatable")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rows-only", action="store_true", help="skip the references")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    from dmix_gym.scenario import parse_options
    from dmix_gym.utils.atomic import write_json
    from leaderboard.protocol import EVAL_SEED_BASE, SearchConfig, get_protocol
    from leaderboard.recommend import search_mixture, search_task
    from leaderboard.registry import resolve_policy
    from leaderboard.scores import mean_std, paired_difference
    from leaderboard.search_log import EpisodeLog, evaluate

    protocol = get_protocol(args.protocol)
    options = {**MODEL, **parse_options(args.options)}
    task = search_task("general-math", args.preset, options=options, objective=protocol.objective)
    folder = args.out / args.protocol
    result = {"protocol": args.protocol, "preset": args.preset, "model": options}
    if not args.rows_only:  # references: the line, then domain splits; no schedules (no headroom on a full corpus)
        config = SearchConfig(coarse=(0.0, 0.1, 0.2, 0.35, 0.5, 1.0), refine=(0.05,), tolerance=0.05, min_step=0.025,
                              search_seeds=1, confirm_seeds=3, random_episodes=3, domains=True, domain_pairs=2,
                              share_multiples=(), model_rounds=1, model_proposals=2)
        found = search_mixture(task, folder / "references", config, schedules=False, workers=args.workers)
        result["references"] = {key: found[key] for key in ("random", "static", "domain", "domain_gain") if key in found}
    seeds = [EVAL_SEED_BASE + SEED_OFFSET + i for i in range(args.seeds)]
    specs = {name: static_transfer(args.protocol) if name == "static-transfer" else name for name in ROWS + tuple(args.policy)}
    env = task.make_env(progress=True)
    policies = {}
    for name, spec in specs.items():
        policies[name], _ = resolve_policy(spec)
        policies[name].prepare(env)  # one-off fits (Mixing laws' proxy runs at this scale) here, once
    log = EpisodeLog(folder / "rows.jsonl")
    scores = evaluate(policies, seeds, task, protocol.objective, log, args.workers)
    base = scores["static-transfer"]
    rows = {name: {"spec": specs[name], "seeds": seeds, "scores": s.tolist(), "mean_std": mean_std(s),
                   "minus_static_transfer": None if name == "static-transfer" else paired_difference(s, base),
                   "compute": policies[name].compute()} for name, s in scores.items()}
    result["rows"] = rows
    write_json(folder / "result.json", result)
    lines = [f"| row | balanced ({args.seeds} seeds) | − static-transfer [95% CI] |", "| --- | ---: | ---: |"]
    for name, row in rows.items():
        d = row["minus_static_transfer"]
        mean, std = row["mean_std"]
        lines.append(f"| {name} | {mean:.3f} ± {std:.3f} | " + ("–" if d is None else
                     f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]") + " |")
    (folder / "result.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(json.dumps({"references": result.get("references", {}).get("static", {}).get("label")}))


if __name__ == "__main__":
    main()
