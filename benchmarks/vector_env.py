"""Throughput of K proxies trained at once (`DataMixVectorEnv`) against separate processes on the same cores.

    python benchmarks/vector_env.py --presets smoke cpu --num-envs 1 4 16 64
    python benchmarks/vector_env.py --presets paper --num-envs 1 4 16 --device cuda

For each preset and K: train tokens/s of all K proxies together (training time only), MFU against
the matmul peak measured on this machine, the eval share of a vector step, and env steps per minute
end to end (K sub-env steps per vector step, Python and evaluation included).

The baseline is what separate processes get from the same cores: P = min(K, cores) processes, each
with cores / P threads, each stepping its own DataMixEnv (more processes than cores only time-share
the cores, so this is the best a process per proxy can do). Reported as `separate_tokens_per_s` and
`separate_env_steps_per_min`, and the vector env's ratio to them.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time

import numpy as np
import torch

from benchmarks.env_step import matmul_peak, report
from dmix_gym.model import train_flops_per_token


def _random_actions(rng: np.random.Generator, k: int, d: int) -> np.ndarray:
    return rng.dirichlet(np.ones(d), size=k)


def bench_vector(preset: str, k: int, steps: int, device: str, slot_group: int | None = None) -> dict:
    """K proxies on one DataMixVectorEnv: `steps` timed vector steps after a warm-up step."""
    from dmix_gym.vector import DataMixVectorEnv

    venv = DataMixVectorEnv(num_envs=k, preset=preset, device=device, progress=False, timing=True,
                            slot_group=slot_group)
    first = venv.envs[0]
    rng = np.random.default_rng(0)
    venv.reset(seed=0)
    venv.step(_random_actions(rng, k, first.num_domains))  # warm-up: allocations
    train_s = eval_s = 0.0
    tokens = 0
    started = time.perf_counter()
    for _ in range(steps):
        _, _, _, _, info = venv.step(_random_actions(rng, k, first.num_domains))
        train_s += float(info["train_seconds"].sum())  # each sub-env reports its share of the batched call
        eval_s += float(info["eval_seconds"].sum())
        tokens += int(info["tokens"].sum())
    wall = time.perf_counter() - started
    return {"train_tokens": tokens, "train_s": train_s, "eval_s": eval_s, "wall_s": wall,
            "flops_per_token": train_flops_per_token(first.model_config, first.shards.seq_len)}


def _separate_worker(preset: str, threads: int, steps: int, device: str, start, queue) -> None:
    import gymnasium as gym

    import dmix_gym  # noqa: F401

    torch.set_num_threads(threads)
    env = gym.make("DataMix-v0", preset=preset, device=device, progress=False, timing=True)
    d = env.unwrapped.num_domains
    rng = np.random.default_rng(os.getpid())
    env.reset(seed=0)
    env.step(_random_actions(rng, 1, d)[0])
    start.wait()
    tokens, train_s, began = 0, 0.0, time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, info = env.step(_random_actions(rng, 1, d)[0])
        tokens += int(info["tokens"].sum())
        train_s += float(info["train_seconds"])
        if terminated or truncated:
            env.reset()
    queue.put((tokens, train_s, time.perf_counter() - began))


def bench_separate(preset: str, processes: int, threads: int, steps: int, device: str) -> dict:
    """`processes` DataMixEnv processes stepping at once; aggregate tokens per second of wall time."""
    ctx = mp.get_context("spawn")
    start, queue = ctx.Barrier(processes), ctx.Queue()
    workers = [ctx.Process(target=_separate_worker, args=(preset, threads, steps, device, start, queue))
               for _ in range(processes)]
    for w in workers:
        w.start()
    results = [queue.get() for _ in workers]
    for w in workers:
        w.join()
    tokens = sum(r[0] for r in results)
    wall = max(r[2] for r in results)
    return {"tokens_per_s": tokens / wall, "train_tokens_per_s": tokens / max(r[1] for r in results),
            "env_steps_per_min": 60 * processes * steps / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["smoke", "cpu"])
    parser.add_argument("--num-envs", nargs="+", type=int, default=[1, 4, 16, 64])
    parser.add_argument("--steps", type=int, default=3, help="timed vector steps per K (after one warm-up step)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--slot-group", nargs="+", type=int, default=[0],
                        help="proxies per training pass to try (0: the env's default for the device)")
    parser.add_argument("--skip-separate", action="store_true", help="time only the vector env (no process baseline)")
    parser.add_argument("--max-proxy-tokens", type=float, default=4e6,
                        help="skip a (preset, K) whose timed steps would train more tokens than this in total")
    parser.add_argument("--out", default=None, help="write the rows as JSON here")
    args = parser.parse_args()
    device = torch.device(args.device)
    cores = torch.get_num_threads() if device.type == "cpu" else 1
    peak = matmul_peak(device)
    print(f"matmul peak on {device} ({torch.get_num_threads()} threads): {peak / 1e12:.3f} TFLOP/s")
    rows = []
    for preset in args.presets:
        for k in args.num_envs:
            from dmix_gym.scenario import make_scenario

            per_step = make_scenario("general-math", preset).train.tokens_per_step
            if k * per_step * args.steps > args.max_proxy_tokens:
                print(f"skip {preset} K={k}: {k * per_step * args.steps / 1e6:.1f}M tokens > --max-proxy-tokens")
                continue
            processes = min(k, cores)
            s = None if args.skip_separate else bench_separate(preset, processes, max(1, cores // processes), args.steps,
                                                               args.device)
            for group in args.slot_group:
                v = bench_vector(preset, k, args.steps, args.device, group or None)
                train_tps = v["train_tokens"] / v["train_s"]
                steps_per_min = 60 * k * args.steps / v["wall_s"]
                rows.append({
                    "preset": preset, "K": k, "device": str(device), "slot_group": group or "default",
                    "train_tokens_per_s": round(train_tps),
                    "mfu": round(train_tps * v["flops_per_token"] / peak, 3),
                    "eval_share": round(v["eval_s"] / (v["train_s"] + v["eval_s"]), 3),
                    "env_steps_per_min": round(steps_per_min, 1),
                })
                if s is not None:
                    rows[-1].update({
                        "separate_processes": processes,
                        "separate_train_tokens_per_s": round(s["train_tokens_per_s"]),
                        "separate_env_steps_per_min": round(s["env_steps_per_min"], 1),
                        "tokens_ratio": round(train_tps / s["train_tokens_per_s"], 2),
                        "steps_ratio": round(steps_per_min / s["env_steps_per_min"], 2),
                    })
                print(rows[-1], flush=True)
    report(rows, peak, args.out)


if __name__ == "__main__":
    main()
