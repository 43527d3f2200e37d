"""What the `dmix` command prints: rich tables of a data manifest, an episode, a dataset and a leaderboard."""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from dmix_gym.errors import ConfigError
from dmix_gym.policy import Episode

# Piped into a file or `tee`, rich would fold tables to 80 columns and cut their headers; print them whole.
PIPED_WIDTH = 240
console = Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else PIPED_WIDTH)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def print_manifest(manifest: dict) -> None:
    """A built data folder's domains (docs, tokens, p0, p*) and fields."""
    space = manifest["domain_space"]
    table = Table(title=f"{manifest['scenario']} / {manifest['preset']}: {len(manifest['domains'])} domains, "
                        f"seq_len {manifest['seq_len']}, vocab {manifest['tokenizer']['vocab_size']}")
    for column in ("#", "domain", "docs", "tokens", "train seqs", "p0", "p*"):
        table.add_column(column, justify="left" if column == "domain" else "right")
    for i, d in enumerate(manifest["domains"]):
        table.add_row(str(i), d["name"], f"{d['documents']:,}", f"{d['tokens']:,}", f"{d['train_sequences']:,}",
                      f"{space['p0'][i]:.3f}", f"{space['p_star'][i]:.3f}")
    table.add_row("", "sum", "", f"{sum(d['tokens'] for d in manifest['domains']):,}", "",
                  f"{sum(space['p0']):.3f}", f"{sum(space['p_star']):.3f}")
    console.print(table)
    fields = Table(title="fields")
    for column in ("field", "role", "docs", "tokens", "eval pairs", "dropped (eval overlap)"):
        fields.add_column(column)
    for name, f in manifest["fields"].items():
        fields.add_row(name, f["role"], f"{f['documents']:,}", f"{f['tokens']:,}", str(f["eval_pairs"]), str(f["decontaminated"]))
    console.print(fields)


def print_episode_steps(episode: Episode, title: str) -> None:
    """Per step: feedback per field, reward, train loss and timings (when the env reports them)."""
    infos = episode.infos
    timed = "train_seconds" in infos
    table = Table(title=title)
    for column in ["step", *[f"f({f})" for f in episode.fields], "reward", "train loss",
                   *(["train s", "eval s"] if timed else [])]:
        table.add_column(column, justify="right")
    for t, feedback in enumerate(episode.feedback):
        step = [f"{episode.rewards[t - 1]:+.4f}", f"{infos['train_loss'][t]:.3f}"] if t else ["", ""]
        timing = [f"{infos['train_seconds'][t]:.2f}" if t else "", f"{infos['eval_seconds'][t]:.2f}"] if timed else []
        table.add_row(str(t), *[f"{v:.4f}" for v in feedback], *step, *timing)
    console.print(table)
    end = "terminated" if episode.terminated else "truncated"
    console.print(f"return {episode.episode_return:+.4f} over {len(episode.rewards)} steps in {episode.seconds:.1f} s ({end})")


def print_policy_episode(episode: Episode, target_domains: np.ndarray, title: str) -> None:
    """Per step: target share, top domain, feedback per field and reward of a policy's episode."""
    table = Table(title=title)
    for column in ["step", "target share", "top domain", *[f"f({f})" for f in episode.fields], "reward"]:
        table.add_column(column, justify="right")
    for t, (p, f) in enumerate(zip(episode.mixtures, episode.feedback)):
        top = int(np.argmax(p))
        table.add_row(str(t), f"{p[target_domains].sum():.3f}", f"{episode.domains[top]} {p[top]:.2f}",
                      *[f"{v:.4f}" for v in f], f"{episode.rewards[t - 1]:+.4f}" if t else "")
    console.print(table)
    summary = episode.summary()
    console.print(f"return {episode.episode_return:+.4f}; final feedback "
                  + ", ".join(f"{k}={v:.4f}" for k, v in summary["final_feedback"].items())
                  + f"; {summary['tokens']:,} tokens in {episode.seconds:.1f} s")


def print_dataset_summary(dataset) -> None:
    """A published dmix dataset's mean return per Algorithm 1 quality level (and of its noisy-schedule slice)."""
    from datasets_builder.publish import dmix_metadata
    from datasets_builder.trajectories import SCHEDULE_QUALITY

    meta = dmix_metadata(dataset)
    table = Table(title=f"{dataset.spec.dataset_id}: {dataset.total_episodes} episodes, {dataset.total_steps} transitions")
    for column in ["quality N", "episodes", "mean return", "std"]:
        table.add_column(column, justify="right")
    returns = np.array([float(np.sum(e.rewards)) for e in dataset.iterate_episodes()])
    quality = np.array(meta["episode_quality"])
    for n in sorted(set(quality)):
        r = returns[quality == n]
        table.add_row("schedule" if n == SCHEDULE_QUALITY else str(n), str(len(r)), f"{r.mean():+.4f}", f"{r.std():.4f}")
    console.print(table)


def print_leaderboard(protocol, db: Path, as_markdown: bool = False) -> None:
    """The ranked table of a protocol's results in `db` (what show, submit and run print)."""
    from leaderboard.official import disagreements, open_store
    from leaderboard.table import markdown, ranked, scale_caption, table_cells

    version = protocol.version
    store = open_store(db, version)
    rows = ranked(store, version)
    tasks = [t.name for t in protocol.tasks]
    if as_markdown:
        print(markdown(rows, tasks), end="")
        return
    header, cells = table_cells(rows, tasks)
    table = Table(title=f"{version}: normalised score ({scale_caption(version)}), mean ± std "
                        "over seeds; * = balanced score (the task's references do not normalise)")
    for column in header:
        table.add_column(column, justify="right")
    for row, line in zip(rows, cells):
        table.add_row(*line[:-1], row.status)  # a failure's reason is printed below the table
    console.print(table)
    for row in rows:
        if row.status == "failed":
            console.print(f"[red]{row.name} failed[/]: {row.reason}")
    for note in disagreements(store, version):
        console.print(f"[yellow]differs from the official results[/]: {note}")


def print_comparison(protocol: str, row: str, other: str, differences: list) -> None:
    """`row` − `other` per task (`leaderboard.compare.Difference`s), and on how many tasks `row` is ahead."""
    table = Table(title=f"{protocol}: {row} − {other}, normalised points, 95% interval "
                        "(paired by seed where both ran the same seeds, Welch's otherwise)")
    for column in ("task", row, other, "difference [95% CI]", "n", "pairing", "verdict"):
        table.add_column(column, justify="right")
    for d in differences:
        colour = {"ahead": "green", "behind": "red"}.get(d.verdict, "yellow")
        table.add_row(d.task, f"{d.row:.1f}", f"{d.other:.1f}", f"{d.mean:+.1f} [{d.low:+.1f}, {d.high:+.1f}]", str(d.n),
                      "paired" if d.paired else "unpaired", f"[{colour}]{d.verdict}[/]")
    console.print(table)
    ahead = sum(d.verdict == "ahead" for d in differences)
    console.print(f"{row} is ahead of {other} beyond noise on {ahead} of {len(differences)} tasks")


def print_ceilings(protocol: str, differences: list) -> None:
    """Every finished row against each task's ref_max (`leaderboard.compare.against_ceiling`), the breaches first."""
    table = Table(title=f"{protocol}: each row − its task's ref_max (100), normalised points, Welch's 95% interval")
    for column in ("row", "task", "row's score", "difference [95% CI]", "verdict"):
        table.add_column(column, justify="right")
    ordered = sorted(differences, key=lambda pair: -pair[1].low)
    for name, d in ordered:
        verdict = "[red]above the ceiling: the reference moves[/]" if d.verdict == "ahead" else d.verdict
        table.add_row(name, d.task, f"{d.row:.1f}", f"{d.mean:+.1f} [{d.low:+.1f}, {d.high:+.1f}]", verdict)
    console.print(table)
    above = [f"{name} on {d.task}" for name, d in ordered if d.verdict == "ahead"]
    console.print(f"{len(above)} of {len(differences)} (row, task) pairs above their task's ref_max beyond noise"
                  + (f": {', '.join(above)}" if above else ""))


def print_ceiling_checks(protocol: str, checks: list[dict]) -> None:
    """Each row above its ceiling, re-run on the ceiling's confirmation seeds (`leaderboard.ceiling.move_ceilings`)."""
    if not checks:
        console.print("no new ceiling check to make")
        return
    table = Table(title=f"{protocol}: rows above their ceiling, paired on the ceiling's confirmation seeds (balanced)")
    for column in ("row", "task", "ceiling", "row's mean", "− ceiling [95% CI]", "reference"):
        table.add_column(column, justify="right")
    for c in checks:
        d = c["minus_ceiling"]
        table.add_row(c["row"], c["task"], f"{c['ceiling']} {c['ceiling_mean']:.3f}", f"{c['mean']:.3f}",
                      f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]", "[red]moved[/]" if c["moved"] else "kept")
    console.print(table)


def print_cpt_records(records: list[dict], title: str) -> None:
    """Per step of a `dmix cpt` run: the top of the mixture, reward, train loss, tokens/s and feedback."""
    table = Table(title=title)
    for column in ["step", "mixture (top 3)", "reward", "train loss", "tok/s", "f(source)", "f(target)"]:
        table.add_column(column, justify="right")
    for r in records:
        top = sorted(enumerate(r["policy_mixture"]), key=lambda x: -x[1])[:3]
        table.add_row(str(r["step"]), " ".join(f"{i}:{p:.2f}" for i, p in top), f"{r['reward']:+.4f}", f"{r['train_loss']:.3f}",
                      f"{r['train_tokens_per_second']:,.0f}", f"{r['feedback'][0]:.3f}", f"{np.mean(r['feedback'][1:]):.3f}")
    console.print(table)


def print_cpt_dry_run(config, gpus: int, micro_batch: int | None) -> None:
    """The model of a `dmix cpt` run on the meta device: parameters and memory per GPU under FSDP."""
    from cpt.models import count_meta_parameters, memory_per_gpu, resolve_model

    scenario = config.make_scenario()
    data = scenario.data.preset
    seq_len = data.seq_len
    choice = resolve_model(config.model, data.vocab_size, seq_len)
    if choice.config is None:
        raise ConfigError("--dry-run needs --model llama-3b, a LlamaConfig JSON or a model dir")
    params = count_meta_parameters(choice.config)
    mb = micro_batch or scenario.train.micro_batch
    table = Table(title=f"{choice.name}: {params:,} parameters ({params / 1e9:.2f}B), vocab {data.vocab_size}, "
                        f"{choice.config.num_hidden_layers} layers; FSDP, bf16 compute, micro-batch {mb} x {seq_len} tokens")
    for column in ["GPUs", "weights+grads+AdamW (GiB)", "gathered layers (GiB)", "activations (GiB)", "total per GPU (GiB)"]:
        table.add_column(column, justify="right")
    for n in sorted({1, 2, 4, 8, gpus}):
        m = memory_per_gpu(choice.config, params, n, mb, seq_len)
        table.add_row(str(n), f"{m.sharded_state_gib:.1f}", f"{m.gathered_layers_gib:.2f}", f"{m.activations_gib:.2f}",
                      f"{m.total_gib:.1f}")
    console.print(table)


def print_selection(selection: dict) -> None:
    """Every candidate's validation score, the chosen one of each algorithm marked."""
    from leaderboard.scores import mean_std
    from leaderboard.selection import run_episodes_of

    chosen = {c["label"] for c in selection["chosen"].values()}
    if "tasks" in selection:  # v2 on: every task type on its own validation seeds
        seeds = next(iter(selection["tasks"].values()))
        where = f"{len(selection['tasks'])} validation tasks x {len(seeds)} seed(s)"
    else:
        where = (f"{selection['scenario']} ({selection['preset']}), "
                 f"validation seeds {selection['seeds'][0]}..{selection['seeds'][-1]}")
    table = Table(title=f"model selection: balanced score on {where}")
    for column in ("candidate", "episodes", "balanced (mean ± std)", "chosen"):
        table.add_column(column, justify="right")
    for label, score in selection["scores"].items():
        counted = run_episodes_of(selection, score)
        mean, std = mean_std(counted.values())
        table.add_row(label, str(len(counted)), f"{mean:+.3f} ± {std:.3f}", "✓" if label in chosen else "")
    console.print(table)


def print_reproduced(found: list, stored_run: dict | None, tolerance: float) -> bool:
    """Each re-run episode's stored score, score here and difference; how both machines ran; whether all are within
    `tolerance`."""
    from leaderboard.machine import run_environment

    table = Table(title="official episodes re-run here")
    for column in ("task", "seed", "stored", "here", "difference"):
        table.add_column(column, justify="left" if column == "task" else "right")
    for r in found:
        table.add_row(r.task, str(r.seed), f"{r.stored:.15g}", f"{r.here:.15g}", f"{r.difference:+.3e}")
    console.print(table)
    here = run_environment()
    for label, run in (("stored on", stored_run), ("here", here)):
        shown = "not recorded" if not run else ", ".join(f"{k} {v if not isinstance(v, list) else len(v)}"
                                                          for k, v in run.items() if k != "vector_extensions")
        console.print(f"{label}: {shown}")
    worst = max((abs(r.difference) for r in found), default=0.0)
    ok = worst <= tolerance
    console.print(f"{len(found)} episodes, largest |difference| {worst:.3e}: "
                  f"{'reproduced' if ok else 'NOT reproduced'} within {tolerance:g}")
    return ok


def print_search(result: dict, folder: Path) -> None:
    """`dmix search`'s answer: the recommended mixtures with their confirmed scores, against the line's best static
    target share; or, where the budget ran out, the best mixture logged so far (unconfirmed)."""
    if "spent" in result:
        best = result.get("best_so_far")
        console.print(f"[yellow]{result['spent']}[/]")
        if best:
            console.print(f"best so far (unconfirmed, mean of {len(best['seeds'])} search episodes): {best['label']} "
                          f"scoring {best['mean']:.4f}")
        return
    table = Table(title=f"dmix search: {result['task']} ({result['episodes']} episodes, {result['episode_seconds']:.0f} "
                        "episode-seconds)")
    for column in ("", "policy spec", "confirmed score", "gain [95% CI]", "over"):
        table.add_column(column, justify="right" if "score" in column or "CI" in column else "left")
    line = result["static"]
    table.add_row("line's best static", line["label"], f"{line['mean']:.4f} ± {line['std']:.4f}", "", "")
    for kind, gain, over in (("domain", "domain_gain", "line's best"), ("schedule", "headroom", "line's best"),
                             ("domain_schedule", "domain_headroom", "best domain")):
        if kind in result:
            d = result[gain]
            table.add_row(f"best {kind.replace('_', ' ')}", result[kind]["label"],
                          f"{result[kind]['mean']:.4f} ± {result[kind]['std']:.4f}",
                          f"{d['mean']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]", over)
    console.print(table)
    for kind in result["recommended"]:
        console.print(f"recommended {kind}: {result['recommended'][kind]['label']}  ->  {folder / (kind + '.json')}")
    console.print(f"use it: dmix cpt --policy {folder / 'static.json'} ...  |  dmix leaderboard submit --policy "
                  f"{folder / 'static.json'} --name mine")


def print_references(store, protocol) -> None:
    """Each task's references: ref_min, ref_max and every confirmed oracle with its seeds."""
    from leaderboard.table import REFERENCE_ROWS

    for task in protocol.tasks:
        ref = store.reference(protocol.version, task.name)
        parts = [f"ref_min {ref['ref_min']:.4f}", f"ref_max {ref['ref_max']:.4f}"]
        for kind in REFERENCE_ROWS:
            if kind in ref:
                parts.append(f"{ref[kind]['label']} {ref[kind]['mean']:.4f} ± {ref[kind]['std']:.4f} "
                             f"(seeds {ref[kind]['seeds'][0]}..{ref[kind]['seeds'][-1]})")
        console.print(f"{task.name}: " + "; ".join(parts))


def print_build_check(version: str, rows: list) -> bool:
    """Each task's start feedback here beside the stored results'; whether no task's differs."""
    table = Table(title=f"{version}: start feedback here vs in the stored results")
    for column in ("task", "here", "stored", "same build"):
        table.add_column(column)
    for task, here, stored, same in rows:
        table.add_row(task, str(np.round(here, 4).tolist()), "–" if stored is None else str(np.round(stored, 4).tolist()),
                      {None: "–", True: "yes", False: "NO"}[same])
    console.print(table)
    return not any(same is False for *_, same in rows)


def print_policy_comparison(title: str, fields: tuple, results: list) -> None:
    """Policies side by side: (label, returns, mean final feedback, mean source tokens, mean seconds) each."""
    table = Table(title=title)
    for column in ["policy", "return", *[f"final f({f})" for f in fields], "source tokens", "seconds"]:
        table.add_column(column, justify="right")
    for label, returns, final, source_tokens, seconds in results:
        table.add_row(label, f"{returns.mean():+.4f} ± {returns.std():.4f}", *[f"{v:.4f}" for v in final],
                      f"{source_tokens:,.0f}", f"{seconds:.1f}")
    console.print(table)
