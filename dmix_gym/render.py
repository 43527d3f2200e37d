"""Pictures of an episode: an ANSI table of the mixture and feedback, a stacked-area plot of the mixture."""

from __future__ import annotations

import numpy as np


def ansi_table(step: int, max_steps: int, domain_names: tuple[str, ...], mixture: np.ndarray,
               fields: tuple[str, ...], feedback: np.ndarray, reward: float | None) -> str:
    """A compact text table: the current mixture per domain and the feedback per field."""
    width = max(len(n) for n in domain_names)
    lines = [f"step {step}/{max_steps}" + (f"  reward {reward:+.4f}" if reward is not None else "")]
    for name, share in zip(domain_names, mixture):
        bar = "#" * int(round(share * 30))
        lines.append(f"  {name:<{width}}  {share:6.3f}  {bar}")
    lines.append("  feedback: " + "  ".join(f"{f}={v:.4f}" for f, v in zip(fields, feedback)))
    return "\n".join(lines) + "\n"


def mixture_area_plot(history: np.ndarray, domain_names: tuple[str, ...], title: str = "mixture over steps",
                      width_px: int = 640, height_px: int = 400) -> np.ndarray:
    """(H, W, 3) uint8 stacked-area plot of the mixture at each step."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    dpi = 100
    fig, ax = plt.subplots(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    steps = np.arange(len(history))
    if len(history):
        ax.stackplot(steps, np.asarray(history).T, labels=domain_names, colors=plt.cm.tab20(np.linspace(0, 1, len(domain_names))))
    ax.set_xlim(0, max(1, len(history) - 1))
    ax.set_ylim(0, 1)
    ax.set_xlabel("re-weighting step")
    ax.set_ylabel("share of sequences")
    ax.set_title(title)
    if len(domain_names) <= 16:
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=6, frameon=False)
    fig.tight_layout()
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image
