"""A static HTML report of a protocol's leaderboard: the ranked table and PNG plots."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from dmix_gym.utils.atomic import atomic_path

from .protocol import get_protocol
from .store import Store
from .table import Row, markdown, ranked, scale_caption, table_cells


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt, plt.figure(figsize=(width, height), dpi=110)


def _save(fig, path: Path) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)


def plot_scores(rows: list[Row], tasks: list[str], path: Path, caption: str) -> None:
    """Grouped bars: normalised score per task for each submission, with the std over seeds as error bars.

    The axis is linear within ±100 (random to best static) and logarithmic beyond, so a collapsed row does not
    flatten the rows that compete near the top.
    """
    done = [r for r in rows if r.status == "done"]
    plt, fig = _figure(2.6 + 1.6 * len(tasks), 4.0)
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(done))
    colors = (plt.cm.tab10 if len(done) <= 10 else plt.cm.tab20)(np.arange(len(done)) % 20)
    for i, row in enumerate(done):
        means, stds = [], []
        for task in tasks:
            score = row.tasks.get(task, {}).get("normalised", (np.nan, np.nan))
            means.append(score[0])
            stds.append(score[1])
        ax.bar(np.arange(len(tasks)) + i * width - 0.4 + width / 2, means, width, yerr=stds, capsize=1.5,
               color=colors[i], error_kw={"lw": 0.6}, label=row.name)
    ax.set_yscale("symlog", linthresh=100)
    ax.axhline(0, color="grey", lw=0.8)
    ax.axhline(100, color="grey", lw=0.8, ls="--")
    ax.set_xticks(np.arange(len(tasks)), tasks)
    ax.set_ylabel("normalised score (linear within ±100)")
    ax.set_title(caption)
    ax.legend(fontsize=7, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    _save(fig, path)


def plot_mixtures(traces: dict[str, dict], path: Path) -> None:
    """One stacked-area panel per submission: the share of every domain over the re-weighting steps (paper Fig. 3)."""
    plt, fig = _figure(3.2 * min(4, len(traces)), 2.6 * int(np.ceil(len(traces) / 4)))
    for i, (name, trace) in enumerate(traces.items()):
        ax = fig.add_subplot(int(np.ceil(len(traces) / 4)), min(4, len(traces)), i + 1)
        mixtures = np.asarray(trace["mixtures"])
        ax.stackplot(np.arange(len(mixtures)), mixtures.T, colors=plt.cm.tab20(np.linspace(0, 1, mixtures.shape[1])))
        ax.set_title(name, fontsize=9)
        ax.set_ylim(0, 1)
        ax.set_xlim(0, len(mixtures) - 1)
        ax.tick_params(labelsize=7)
    fig.supxlabel("re-weighting step", fontsize=8)
    fig.supylabel("share of sequences", fontsize=8)
    domains = next(iter(traces.values()))["domains"]
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in plt.cm.tab20(np.linspace(0, 1, len(domains)))]
    fig.legend(handles, domains, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, frameon=False)
    _save(fig, path)


def plot_feedback(traces: dict[str, dict], path: Path) -> None:
    """Feedback of every field over the re-weighting steps, one line per submission."""
    fields = next(iter(traces.values()))["fields"]
    plt, fig = _figure(4.0 * len(fields), 3.2)
    for k, field in enumerate(fields):
        ax = fig.add_subplot(1, len(fields), k + 1)
        for name, trace in traces.items():
            ax.plot(np.asarray(trace["feedback"])[:, k], label=name)
        ax.set_title(f"feedback: {field}")
        ax.set_xlabel("re-weighting step")
        if k == 0:
            ax.legend(fontsize=7, frameon=False)
    _save(fig, path)


def write_report(store: Store, protocol_version: str, out: str | Path) -> Path:
    """Write `<out>/index.html` and its PNGs; return the HTML path."""
    protocol = get_protocol(protocol_version)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = ranked(store, protocol.version)
    tasks = [t.name for t in protocol.tasks]
    first = protocol.tasks[0]
    traces = {}
    for row in rows:
        for episode in store.episodes(protocol.version, row.name):
            if episode["task"] == first.name and episode["seed"] == first.seeds[0] and "mixtures" in episode["trace"]:
                traces[row.name] = episode["trace"]
    images = []
    if any(r.status == "done" for r in rows):
        plot_scores(rows, tasks, out / "scores.png", scale_caption(protocol.version))
        images.append(("scores.png", "Normalised score per task (mean ± std over seeds)"))
    if traces:
        plot_mixtures(traces, out / "mixtures.png")
        plot_feedback(traces, out / "feedback.png")
        images += [("mixtures.png", f"Mixture over time, task {first.name}, seed {first.seeds[0]}"),
                   ("feedback.png", f"Feedback per field over time, task {first.name}, seed {first.seeds[0]}")]

    header, cells = table_cells(rows, tasks)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in header)
    body = ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in cells]
    (out / "table.md").write_text(markdown(rows, tasks))
    task_list = "".join(f"<li><b>{html.escape(t.name)}</b>: {html.escape(t.description)} "
                        f"({t.scenario if len(t.scenario) < 40 else 'custom'}, "
                        f"preset {t.preset}, seeds {', '.join(map(str, t.seeds))})</li>" for t in protocol.tasks)
    figures = "".join(f'<figure><img src="{src}" alt="{html.escape(caption)}"><figcaption>{html.escape(caption)}</figcaption></figure>'
                      for src, caption in images)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dmix leaderboard: {html.escape(protocol.version)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; width: 100%; font-size: 0.9rem; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 0.35rem 0.6rem; text-align: right; }}
th:nth-child(2), td:nth-child(2), th:last-child, td:last-child {{ text-align: left; }}
figure {{ margin: 1.5rem 0; }} img {{ max-width: 100%; }} figcaption {{ color: #555; font-size: 0.85rem; }}
</style></head><body>
<h1>dmix leaderboard <code>{html.escape(protocol.version)}</code></h1>
<p>Normalised score per task: 0 = the mean of random-mixture policies, 100 = the best static mixture
(1 − s)·p<sub>0</sub> + s·p* over s ∈ {{{', '.join(f'{s:g}' for s in protocol.reference_grid)}}}; mean ± std over the task's seeds.
The balanced score standardises each field's final feedback with the statistics of <code>{html.escape(protocol.dataset)}</code>.
* marks a task whose references do not normalise (random beat the grid); its balanced score is shown and it is left out of "overall".</p>
<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>
<h2>Tasks</h2><ul>{task_list}</ul>
{figures}
</body></html>
"""
    path = out / "index.html"
    with atomic_path(path, suffix=".html") as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path
