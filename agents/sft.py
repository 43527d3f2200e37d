"""SFT warm-up (paper eq. 4, C.3): fit the agent's next mixture to the logged one on the best trajectories, by MSE.

A share of the subset's episodes is held out; the saved agent is the epoch with the lowest
validation MSE (the last epoch when nothing is held out).

Resumable: every `checkpoint_every` epochs the net, optimiser and loss history are written
atomically to `<out>/sft-checkpoint.pt`; a re-run with the same settings continues from there.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from dmix_gym.errors import ConfigError
from dmix_gym.utils.atomic import atomic_path, write_json

from .agent import FORMAT, TransformerAgent, device_label
from .finished import finished_metrics
from .networks import AgentConfig
from .offline_data import OfflineData


@dataclass(frozen=True)
class SFTConfig:
    quality: int | None = 10000  # the Algorithm 1 subset to imitate; None: every episode
    top: float | None = None  # instead, imitate the episodes with the top share of balanced returns, over every level
    epochs: int = 150
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 0.01
    val_episodes: float = 0.125  # share of the subset's episodes held out for validation
    seed: int = 0
    checkpoint_every: int = 25


def split_episodes(episodes: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train ids, validation ids): a seeded share of the distinct episode ids goes to validation."""
    ids = np.unique(episodes)
    n_val = int(round(len(ids) * share)) if len(ids) > 1 else 0
    held = np.random.default_rng(seed).permutation(ids)[:n_val]
    return np.setdiff1d(ids, held), np.sort(held)


def mse(net, windows: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.mean((net.mixture(windows) - targets) ** 2)


def train_sft(data: OfflineData, out: str | Path, agent_config: AgentConfig = AgentConfig(), config: SFTConfig = SFTConfig(),
              progress: bool = True) -> tuple[TransformerAgent, dict]:
    """Train (or finish training) an SFT agent on `data`; save it to `<out>/sft.pt`; return it and its metrics. A run
    that finished in `out` with the same settings is read back."""
    from tqdm.auto import trange

    if agent_config.window != data.window:
        raise ConfigError(f"agent window {agent_config.window} != data window {data.window}")
    data.expect_features(agent_config.features, agent_config.target_left, "the SFT agent")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if config.top:
        subset = data.top_episodes(config.top)
    else:
        subset = data if config.quality is None else data.of_quality(config.quality)
    train_ids, val_ids = split_episodes(subset.episode, config.val_episodes, config.seed)
    train, val = subset.select(np.isin(subset.episode, train_ids)), subset.select(np.isin(subset.episode, val_ids))

    agent = TransformerAgent.create(data.domain_space, data.feedback_mean, data.feedback_std, agent_config,
                                    config.seed, name="sft")
    net = agent.net.train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    settings = {"sft": asdict(config), "agent": agent_config.to_dict(), "dataset": data.dataset_id, "format": FORMAT}
    finished = finished_metrics(out / "sft-metrics.json", settings, [out / "sft.pt"])
    if finished is not None:
        return TransformerAgent.load(out / "sft.pt"), finished
    checkpoint = out / "sft-checkpoint.pt"
    history: list[dict] = []
    start_epoch, seconds = 0, 0.0
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        if state["settings"] != settings:
            raise ConfigError(f"{checkpoint} was written with other settings; remove it or use another --out")
        net.load_state_dict(state["net"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, history, seconds = state["epoch"], state["history"], state["seconds"]

    x, y = torch.from_numpy(train.windows), torch.from_numpy(train.actions)
    xv, yv = torch.from_numpy(val.windows), torch.from_numpy(val.actions)
    generator = torch.Generator().manual_seed(config.seed)
    for _ in range(start_epoch):  # replay the shuffles a resumed run skipped, so resuming changes nothing
        torch.randperm(len(x), generator=generator)
    best = state["best"] if checkpoint.exists() else {"val_mse": float("inf"), "epoch": 0, "net": None}
    started = time.perf_counter()
    bar = trange(start_epoch, config.epochs, desc="SFT", unit="epoch", disable=not progress,
                 initial=start_epoch, total=config.epochs)
    for epoch in bar:
        net.train()
        order = torch.randperm(len(x), generator=generator)
        total = 0.0
        for start in range(0, len(x), config.batch_size):
            batch = order[start:start + config.batch_size]
            loss = mse(net, x[batch], y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        net.eval()
        with torch.no_grad():
            val_loss = mse(net, xv, yv).item() if len(xv) else float("nan")
        history.append({"epoch": epoch + 1, "train_mse": total / len(x), "val_mse": val_loss})
        if len(xv) and val_loss < best["val_mse"]:  # keep the epoch that generalises best
            best = {"val_mse": val_loss, "epoch": epoch + 1, "net": {k: v.clone() for k, v in net.state_dict().items()}}
        bar.set_postfix(train=f"{total / len(x):.2e}", val=f"{val_loss:.2e}")
        done = epoch + 1
        if done % config.checkpoint_every == 0 or done == config.epochs:
            with atomic_path(checkpoint, suffix=".pt") as tmp:
                torch.save({"settings": settings, "net": net.state_dict(), "optimizer": optimizer.state_dict(), "epoch": done,
                            "history": history, "best": best, "seconds": seconds + time.perf_counter() - started}, tmp)
    seconds += time.perf_counter() - started
    if best["net"] is not None:
        net.load_state_dict(best["net"])
    net.eval()
    # best_val_mse is None when the dataset has too few episodes to hold some out.
    metrics = {
        **settings, "train_transitions": len(x), "val_transitions": len(xv), "val_episodes": val_ids.tolist(),
        "seconds": round(seconds, 2), "best_epoch": best["epoch"] or len(history), "best_val_mse": best["val_mse"] if len(xv) else None,
        "final": history[-1] if history else None, "history": history,
    }
    agent.meta = {"algo": "sft", "dataset": data.dataset_id, "scenario": data.scenario, "train_seconds": round(seconds, 2),
                  "dataset_transitions": len(data), "device": device_label("cpu")}
    agent.save(out / "sft.pt")
    write_json(out / "sft-metrics.json", metrics)
    return agent, metrics
