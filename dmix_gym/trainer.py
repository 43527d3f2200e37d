"""Trains the proxy LM on batches of token sequences: AdamW, warm-up then cosine, gradient clipping."""

from __future__ import annotations

import math
import time
from contextlib import nullcontext

import torch

from .scenario import TrainConfig


def lr_at(step: int, total_steps: int, peak: float, warmup_fraction: float, min_ratio: float,
          schedule: str = "cosine", decay_fraction: float = 0.2) -> float:
    """Learning rate at optimizer step `step` of `total_steps`: linear warm-up, then

    - `cosine`: cosine decay down to min_ratio * peak at the last step;
    - `wsd` (warmup-stable-decay, Hu et al. 2024): the peak held until the last `decay_fraction` of the steps,
      then a linear anneal down to min_ratio * peak at the last step.
    """
    warmup = max(1, int(round(warmup_fraction * total_steps)))
    if step < warmup:
        return peak * (step + 1) / warmup
    if schedule == "wsd":
        decay = max(1, int(round(decay_fraction * total_steps)))
        start = max(warmup, total_steps - decay)
        if step < start:
            return peak
        progress = min(1.0, (step - start + 1) / max(1, total_steps - start))
        return peak * (1.0 - (1.0 - min_ratio) * progress)
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    return peak * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def scheduled_lr(config: TrainConfig, step: int, total_steps: int, peak: float) -> float:
    """`lr_at` with the episode's schedule settings from `config`."""
    return lr_at(step, total_steps, peak, config.warmup_fraction, config.min_lr_ratio, config.lr_schedule,
                 config.decay_fraction)


def autocast(device: torch.device):
    """bf16 autocast on GPU; full precision on CPU (bf16 matmuls are slow on most CPUs)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


class ProxyTrainer:
    """One optimizer and LR schedule over a fixed number of optimizer steps."""

    def __init__(self, model: torch.nn.Module, config: TrainConfig, total_steps: int, peak_lr: float, compile: bool = False):
        self.model = model
        self.config = config
        self.total_steps = total_steps
        self.peak_lr = peak_lr
        self.step_count = 0
        self.device = next(model.parameters()).device
        decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
        no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=peak_lr, betas=(0.9, 0.95), eps=1e-8, fused=self.device.type == "cuda",
        )
        self.forward = torch.compile(model) if compile else model

    def train_on(self, tokens: torch.Tensor) -> dict[str, float]:
        """Train on (N, L) token ids in micro-batches; return mean loss, tokens and seconds."""
        self.model.train()
        started = time.perf_counter()
        losses = []
        for batch in tokens.split(self.config.micro_batch):
            lr = scheduled_lr(self.config, self.step_count, self.total_steps, self.peak_lr)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            batch = batch.to(self.device, non_blocking=True)
            with autocast(self.device):
                loss = self.forward(input_ids=batch, labels=batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step_count += 1
            losses.append(loss.detach())
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return {
            "loss": float(torch.stack(losses).mean()) if losses else float("nan"),
            "tokens": int(tokens.numel()),
            "seconds": time.perf_counter() - started,
        }
