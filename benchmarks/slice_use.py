"""How an open-loop mixture reads a task's target corpus, step by step: sequences drawn per target domain, and the
step the target field runs out (the episode's end where the task terminates on it). No proxy trains: the counts
come from the env's own sampler rule (`dmix_gym.sampler.allocate`: a used-up domain's share moves to its field's
other domains in proportion to what they have left), so a scarce corpus's budget is read in seconds.

    python benchmarks/slice_use.py --task scarce-target --policy static:target-share=0.0937 \
        --policy domains:source=0.9063,target/c07-years-old=0.0937 [--protocol dmix-bench-v3]

Policies are the ones a spec writes out in full (static and schedule shares, domain mixtures and schedules): what
they play depends on the step alone, so the start observation stands in for every step's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUT = ROOT / "benchmarks" / "results" / "slice_use"


def slice_use(env, policy) -> tuple[list[np.ndarray], int | None]:
    """(target sequences drawn per target domain at each step, the step the target field ran out or None)."""
    from dmix_gym.policy import History, ScenarioInfo
    from dmix_gym.sampler import MixtureSampler, planned_draws

    start, _ = env.reset(seed=0)
    base = env.unwrapped
    policy.reset(ScenarioInfo.from_env(env))

    def mixtures():
        history = History([start], [{}])
        for _ in range(base.max_steps):
            yield policy.act(history)
            history.append(start, {})

    sampler = base.sampler
    drawn = list(planned_draws(sampler, mixtures()))
    read = MixtureSampler(sampler.totals, sampler.field_of, sampler.sequences_per_step)
    read.used += np.sum(drawn, axis=0)
    used_up = not sampler.repeat and bool(np.any(read.field_fraction_left()[1:] == 0))  # field 0 is the source
    return [counts[sampler.field_of > 0] for counts in drawn], len(drawn) if used_up else None


def report(task, specs: list[str]) -> str:
    """A markdown table per policy: the target slice per domain, then what each step draws of it."""
    from leaderboard.registry import SPEC_PREFIXES, spec_policy

    env = task.make_env()
    base = env.unwrapped
    names = [name for name, field in zip(base.domain_space.names, base.domain_space.field_of) if field > 0]
    totals = base.sampler.totals[np.asarray(base.domain_space.field_of) > 0]
    lines = [f"# {task.name}: the target corpus, {int(totals.sum())} sequences an episode may draw, "
             f"{base.sampler.sequences_per_step} sequences a step, {base.max_steps} steps", ""]
    header = "| step | " + " | ".join(f"{n.split('/', 1)[-1]} ({t})" for n, t in zip(names, totals)) + " | target |"
    for spec in specs:
        if not spec.startswith(SPEC_PREFIXES):
            raise SystemExit(f"--policy {spec!r}: only policies written out in full ({', '.join(SPEC_PREFIXES)}) play "
                             "without the feedback")
        drawn, ran_out = slice_use(env, spec_policy(spec))
        lines += [f"## `{spec}`", "", "the target field " + (f"runs out at step {ran_out}" if ran_out else "lasts"),
                  "", header, "| ---: " * (len(names) + 2) + "|"]
        lines += [f"| {t + 1} | " + " | ".join(str(int(c)) for c in counts) + f" | {int(counts.sum())} |"
                  for t, counts in enumerate(drawn)]
        lines.append("")
    env.close()
    return "\n".join(lines)


def main() -> None:
    from leaderboard.protocol import get_protocol

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default="dmix-bench-v3")
    parser.add_argument("--task", default="scarce-target")
    parser.add_argument("--policy", action="append", required=True, help="a static or scheduled mixture spec (repeatable)")
    args = parser.parse_args()
    tasks = {t.name: t for t in get_protocol(args.protocol).tasks}
    if args.task not in tasks:
        raise SystemExit(f"--task {args.task!r} is not a task of {args.protocol} ({', '.join(tasks)})")
    text = report(tasks[args.task], args.policy)
    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / f"{args.protocol}-{args.task}.md"
    out.write_text(text + "\n")
    print(text)
    print(f"written: {out}")


if __name__ == "__main__":
    main()
