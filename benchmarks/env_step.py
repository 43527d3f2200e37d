"""Speed of DataMix-v0: matmul peak, proxy training tokens/s and MFU, step time split, episode time.

    python benchmarks/env_step.py --presets smoke cpu            # CPU
    python benchmarks/env_step.py --presets paper --device cuda  # GPU

MFU = model FLOPs/s (6N per token plus attention, as nanoGPT counts) / the measured matmul
peak of this machine (fp32 on CPU, bf16 on GPU; measured before and after, the larger used).
Over the whole run and for the median step, since a shared machine's speed drifts.
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym
import numpy as np
import torch

import dmix_gym  # noqa: F401
from dmix_gym.model import count_parameters, train_flops_per_token


def matmul_peak(device: torch.device, seconds: float = 3.0) -> float:
    """Practical peak FLOP/s of square matmuls (fp32 on CPU, bf16 on GPU)."""
    n = 1024 if device.type == "cpu" else 8192
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(4):
            a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = max(best, 4 * 2 * n**3 / (time.perf_counter() - start))
    return best


def eval_parts(env) -> dict[str, float]:
    """Seconds of each part of one evaluation: the rewarded Q/A sets, the held-out text, the probes."""
    from dmix_gym.feedback import domain_loss_sums, feedback_sums

    base = env.unwrapped
    model, evalset = base.model.eval(), base.evalset
    parts = {"qa": lambda: feedback_sums(model, evalset.answers, evalset.num_fields),
             "heldout": lambda: domain_loss_sums(model, evalset.heldout, evalset.num_domains),
             "probes": lambda: feedback_sums(model, evalset.probes, evalset.num_probes)}
    seconds = {}
    for name, run in parts.items():
        started = time.perf_counter()
        run()
        seconds[f"eval_{name}_s"] = round(time.perf_counter() - started, 3)
    return seconds


def bench_preset(preset: str, device: str, episodes: int, peak: float) -> dict:
    env = gym.make("DataMix-v0", preset=preset, device=device, progress=True, timing=True)
    base = env.unwrapped
    flops_per_token = train_flops_per_token(base.model_config, base.shards.seq_len)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    env.step(rng.dirichlet(np.ones(base.num_domains)))  # warm-up (allocations, compile)
    train_s, eval_s, tokens, episode_s = [], [], [], []
    for episode in range(episodes):
        started = time.perf_counter()
        env.reset(seed=episode)
        done = False
        while not done:
            _, _, terminated, truncated, info = env.step(rng.dirichlet(np.ones(base.num_domains)))
            done = terminated or truncated
            train_s.append(float(info["train_seconds"]))
            eval_s.append(float(info["eval_seconds"]))
            tokens.append(int(info["tokens"].sum()))
        episode_s.append(time.perf_counter() - started)
    tok_per_s = sum(tokens) / sum(train_s)
    median_tok_per_s = float(np.median(np.divide(tokens, train_s)))  # robust to a noisy neighbour's bursts
    step_s = np.add(train_s, eval_s)
    return {
        "preset": preset,
        "device": str(base.device),
        "params": count_parameters(base.model),
        "domains": base.num_domains,
        "tokens_per_step": int(np.mean(tokens)),
        "train_tokens_per_s": round(tok_per_s),
        "model_tflops": round(tok_per_s * flops_per_token / 1e12, 4),
        "mfu": round(tok_per_s * flops_per_token / peak, 3),
        "mfu_median_step": round(median_tok_per_s * flops_per_token / peak, 3),
        "train_s_per_step": round(float(np.mean(train_s)), 3),
        "eval_s_per_step": round(float(np.mean(eval_s)), 3),
        "eval_share": round(float(np.sum(eval_s) / np.sum(step_s)), 3),
        "eval_share_median_step": round(float(np.median(np.divide(eval_s, step_s))), 3),
        "steps_per_minute": round(60 / float(np.mean(step_s)), 1),
        "episode_s": round(float(np.mean(episode_s)), 1),
        **eval_parts(env),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["smoke", "cpu"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--episodes", type=int, default=1)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    device = torch.device(args.device)
    peak = matmul_peak(device)
    print(f"matmul peak on {device} ({torch.get_num_threads()} threads): {peak / 1e12:.3f} TFLOP/s")
    rows = [bench_preset(p, args.device, args.episodes, peak) for p in args.presets]
    after = matmul_peak(device)  # the larger of the two: MFU is not flattered by a slow moment
    if after > peak:
        print(f"matmul peak measured again after: {after / 1e12:.3f} TFLOP/s; MFU uses it")
        for row in rows:
            for key in ("mfu", "mfu_median_step"):
                row[key] = round(row[key] * peak / after, 3)
        peak = after
    report(rows, peak, args.out)


def report(rows: list[dict], peak: float, out: str | None) -> None:
    """Print the rows as a table and, with `out`, write them and the matmul peak as JSON."""
    keys = list(rows[0]) if rows else []
    print(" | ".join(keys))
    for row in rows:
        print(" | ".join(str(row.get(key, "")) for key in keys))
    if out:
        with open(out, "w") as handle:
            json.dump({"matmul_peak_flops": peak, "rows": rows}, handle, indent=1)


if __name__ == "__main__":
    main()
