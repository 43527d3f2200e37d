"""How much domain detail do Mixing laws' proxy runs support? Each penalty of the grid, refitted on v3's staged runs.

Mixing laws over domains (`baselines.mixing_laws`) shrink each domain's exponent toward its field's by a penalty that
leave-one-out error chooses. v3's first row chose from (1e-3 .. 1), took 1 on every task and played an all-source
split. This refits every penalty of today's grid (to the per-field law, an infinite penalty) on the same staged runs
and prints, per task: the leave-one-out and held-out errors, and the field shares and predicted objective of the laws'
maximum. No env step runs (the env is built only to read each scenario's domain space).

    python benchmarks/mixing_laws_penalty.py   # writes benchmarks/results/mixing_laws_penalty/table.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STAGING = ROOT / "benchmarks" / "results" / "leaderboard" / "staging-dmix-bench-v3"
OUT = ROOT / "benchmarks" / "results" / "mixing_laws_penalty"


def main() -> None:
    import gymnasium as gym

    import dmix_gym  # noqa: F401  (registers DataMix-v0)
    from baselines.mixing_laws import MixingLawsConfig, best_mixture, choose_penalty, fit_law, law, search_candidates
    from baselines.proxy_runs import read_proxy_runs
    from dmix_gym.data.domains import collapse
    from dmix_gym.feedback import objective

    config = MixingLawsConfig()
    lines = ["| proxy runs | penalty | leave-one-out error | held-out error | field shares of the maximum | predicted | best run |",
             "| --- | ---: | ---: | ---: | --- | ---: | ---: |"]
    for folder in sorted(STAGING.glob("*-mixing-laws-*")):
        plan = json.loads((folder / "plan.json").read_text())
        env = gym.make("DataMix-v0", scenario=plan["scenario"])
        space, weights = env.unwrapped.domain_space, np.asarray(env.unwrapped.scenario.weights())
        env.close()
        runs = read_proxy_runs(folder)
        x, loss = runs.mixtures, -runs.final_feedback
        groups, k = np.asarray(space.field_of), len(space.fields)
        fit, held = slice(0, config.runs), slice(config.runs, None)
        rng = np.random.default_rng(config.seed)
        fields = np.concatenate([np.eye(k), rng.dirichlet(np.ones(k), size=20_000)])
        candidates = search_candidates(fields, space, rng, config)
        best_run = objective(-loss[fit], weights).max()
        _, errors = choose_penalty(x[fit], loss[fit], groups, config.penalties, config)
        for penalty, loo in errors.items():
            params = [fit_law(x[fit], loss[fit, i], config.starts, config.seed + i, groups, penalty) for i in range(k)]
            held_error = np.mean([np.abs(law(p, x[held]) - loss[held, i]).mean() for i, p in enumerate(params)])
            best = best_mixture(params, weights, candidates)
            predicted = objective(-np.array([law(p, best[None])[0] for p in params]), weights)
            shares = ", ".join(f"{s:.3f}" for s in collapse(best, space))
            lines.append(f"| {folder.name} | {penalty:g} | {loo:.3f} | {held_error:.3f} | {shares} | {predicted:.2f} | "
                         f"{best_run:.2f} |")
            print(lines[-1], flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "table.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
