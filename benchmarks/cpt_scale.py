"""Does the proxy-scale ranking hold at 10x? Whole `dmix cpt` episodes of `llama-10x` (9.4x the cpu proxy), each policy
driving its continual pre-training under `torchrun` (gloo on CPU), a few seeds each, scored by dmix-bench-v2's
objective on the final feedback, with paired-seed intervals against a reference policy.

Each (policy, seed) runs in `runs/cpt-10x/<name>-s<seed>/` (a killed run resumes there from its last complete step);
its finished `metrics.jsonl` is copied to `results/cpt_scale/<name>-s<seed>.jsonl` (commit it: a re-run on any machine
runs only what is missing). `--kill-resume NAME` also runs NAME's first seed killed mid-episode and resumed, and checks
its records against the uninterrupted run's. Every run rewards `--objective`'s score (dmix-bench-v2's), so Mixing laws
and RegMix fit the score the table ranks by.

The 10x base is not shipped (69 MB): the first run on a machine pre-trains it (13.5 min on 2 cores, cached). Its
start feedback is committed beside the results (`start-<model>.json`), and a machine whose base starts elsewhere
(beyond 1e-3) stops before running anything, so runs from two different bases never share a table.

    python benchmarks/cpt_scale.py --policy uniform=baseline:uniform --policy static=static:target-share=0.1 --seeds 3
    python benchmarks/cpt_scale.py --table --reference static       # the README's table and plot from the results
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results" / "cpt_scale"
RUNS = Path("runs/cpt-10x")
CPT_SEED_BASE = 9_000_000  # away from collection, evaluation, validation, reference, sweep and start-state seeds


def command(spec: str, seed: int, out: Path, args) -> list[str]:
    """The torchrun command line of one run."""
    return ["torchrun", "--standalone", f"--nproc-per-node={args.nproc}", "-m", "dmix", "cpt", "--policy", spec,
            "--model", args.model, "--preset", args.preset, "--seed", str(seed), "--out", str(out), "--device", "cpu",
            "--objective", args.objective]


def check_start(args) -> list[float]:
    """The model's feedback at reset (its base pre-trained here on first use), checked against the committed runs'."""
    from cpt.run import CPTConfig
    from dmix_gym.env import DataMixEnv

    scenario = CPTConfig("baseline:uniform", model=args.model, preset=args.preset, objective=args.objective).make_scenario()
    _, info = DataMixEnv(scenario, None, progress=True).reset(seed=CPT_SEED_BASE)
    start = [float(f) for f in info["feedback"]]
    path = RESULTS / f"start-{args.model}.json"
    if path.exists():
        committed = json.loads(path.read_text())["feedback"]
        if np.max(np.abs(np.subtract(start, committed))) > 1e-3:
            raise SystemExit(f"cpt_scale: this machine's {args.model} base starts at feedback {start}, the committed runs "
                             f"at {committed}: its runs would not be comparable; build the base where those ran")
    else:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"model": args.model, "preset": args.preset, "feedback": start}) + "\n")
    return start


def finished(path: Path, max_steps: int) -> bool:
    """Whether a results file holds a whole episode (the cpu scenarios' target corpus never runs out, so all its steps)."""
    return path.exists() and len(path.read_text().splitlines()) >= max_steps


def run_one(name: str, spec: str, seed: int, args, max_steps: int) -> Path:
    """Run (or resume) one (policy, seed) episode; copy its metrics into the results once whole."""
    result = RESULTS / f"{name}-s{seed}.jsonl"
    if finished(result, max_steps):
        return result
    out = RUNS / f"{name}-s{seed}"
    subprocess.run(command(spec, seed, out, args), check=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    shutil.copy2(out / "metrics.jsonl", result)
    return result


def kill_and_resume(name: str, spec: str, seed: int, args, max_steps: int) -> dict:
    """Run one episode killed after half its steps and resumed; compare its records with the uninterrupted run's."""
    from dmix_gym.utils.processes import kill_tree

    out = RUNS / f"{name}-s{seed}-killed"
    metrics = out / "metrics.jsonl"
    if not metrics.exists() or len(metrics.read_text().splitlines()) < max_steps:
        proc = subprocess.Popen(command(spec, seed, out, args), start_new_session=True)
        while proc.poll() is None and (not metrics.exists() or len(metrics.read_text().splitlines()) < max_steps // 2):
            time.sleep(2)
        kill_tree(proc.pid)  # torchrun and its ranks, each in a session of its own
        proc.wait()
        subprocess.run(command(spec, seed, out, args), check=True)
    whole = [json.loads(x) for x in (RESULTS / f"{name}-s{seed}.jsonl").read_text().splitlines()]
    resumed = [json.loads(x) for x in metrics.read_text().splitlines()]
    check = {
        "policy": name, "seed": seed, "steps": len(resumed), "same_tokens": [r["tokens"] for r in whole] == [r["tokens"] for r in resumed],
        "max_feedback_difference": float(np.max(np.abs(np.array([r["feedback"] for r in whole]) -
                                                       np.array([r["feedback"] for r in resumed])))),
        "same_mixtures": bool(np.allclose([r["policy_mixture"] for r in whole], [r["policy_mixture"] for r in resumed], atol=1e-6)),
    }
    (RESULTS / "kill-resume.json").write_text(json.dumps(check, indent=2) + "\n")
    return check


def load_results() -> dict[str, dict[int, list[dict]]]:
    """{policy name: {seed: records}} of every finished run in the results folder."""
    runs: dict[str, dict[int, list[dict]]] = {}
    for path in sorted(RESULTS.glob("*-s*.jsonl")):
        name, seed = path.stem.rsplit("-s", 1)
        runs.setdefault(name, {})[int(seed)] = [json.loads(x) for x in path.read_text().splitlines()]
    return runs


def table(reference: str | None) -> str:
    """Markdown: each policy's v2 score (mean ± seed std) and its paired difference from `reference`."""
    from leaderboard.protocol import V2_OBJECTIVE
    from leaderboard.scores import paired_difference

    runs = load_results()
    scores = {name: {s: V2_OBJECTIVE.score(np.asarray(r[-1]["feedback"])) for s, r in seeds.items()} for name, seeds in runs.items()}
    lines = ["| policy | seeds | final feedback (source, target) | v2 score | − reference [95% CI] |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for name, by_seed in sorted(scores.items(), key=lambda kv: -np.mean(list(kv[1].values()))):
        finals = np.mean([runs[name][s][-1]["feedback"] for s in by_seed], axis=0)
        values = np.array(list(by_seed.values()))
        diff = "–"
        if reference in scores and name != reference:
            common = sorted(set(by_seed) & set(scores[reference]))
            if len(common) >= 2:
                d = paired_difference(np.array([by_seed[s] for s in common]), np.array([scores[reference][s] for s in common]))
                diff = f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"
        spread = values.std(ddof=1) if len(values) > 1 else 0.0
        lines.append(f"| {name} | {len(values)} | {finals[0]:.3f}, {finals[1]:.3f} | {values.mean():.3f} ± {spread:.3f} | {diff} |")
    return "\n".join(lines)


def plot(path: Path) -> None:
    """Each field's feedback against training tokens, one line per policy (mean over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = load_results()
    starts = [json.loads(p.read_text())["feedback"] for p in RESULTS.glob("start-*.json")]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for name, seeds in sorted(runs.items()):
        steps = min(len(r) for r in seeds.values())
        tokens = np.cumsum([np.sum(r["tokens"]) for r in next(iter(seeds.values()))[:steps]])
        feedback = np.mean([[r["feedback"] for r in records[:steps]] for records in seeds.values()], axis=0)
        if len(starts) == 1:  # every run starts from the same base: draw it at token 0
            tokens, feedback = np.concatenate([[0], tokens]), np.vstack([starts[0], feedback])
        for k, ax in enumerate(axes):
            ax.plot(tokens, feedback[:, k], label=name)
    for ax, field in zip(axes, ("source field (held-out text)", "target field (Q/A)")):
        ax.set(xlabel="training tokens", ylabel="feedback (mean log-prob)", title=field)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", action="append", default=[], metavar="NAME=SPEC", help="a policy to run (repeatable)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--model", default="llama-10x")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--objective", default="dmix-bench-v2", help="the protocol whose objective every run rewards")
    parser.add_argument("--kill-resume", metavar="NAME", help="also run NAME's first seed killed mid-episode and resumed")
    parser.add_argument("--table", action="store_true", help="print the table of finished runs, draw the plot, and stop")
    parser.add_argument("--reference", help="the policy the table's paired differences are taken against")
    args = parser.parse_args()
    if args.table:
        print(table(args.reference))
        plot(RESULTS / "feedback.png")
        return
    from dmix_gym.scenario import make_scenario

    max_steps = make_scenario("general-math", args.preset).train.max_steps
    check_start(args)
    policies = dict(p.split("=", 1) for p in args.policy)
    for seed in range(CPT_SEED_BASE, CPT_SEED_BASE + args.seeds):  # seed-major: every policy has seed 0 first
        for name, spec in policies.items():
            run_one(name, spec, seed, args, max_steps)
    if args.kill_resume:
        print(json.dumps(kill_and_resume(args.kill_resume, policies[args.kill_resume], CPT_SEED_BASE, args, max_steps)))
    print(table(args.reference))


if __name__ == "__main__":
    main()
