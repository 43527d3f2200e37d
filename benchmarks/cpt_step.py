"""Speed of `dmix cpt` against DataMix-v0 at the same model: train tokens/s and MFU, 1 and 2 ranks, in one run.

    python benchmarks/cpt_step.py --models proxy llama-10x --steps 4      # CPU (gloo), the cpu preset
    python benchmarks/cpt_step.py --models llama-10x --device cuda --ranks 1 2 4 8

For each model: the env (one process, `ProxyBackend`) trains `--steps` steps of a uniform mixture, then
`torchrun --nproc-per-node R -m dmix cpt` runs the same steps for each R in --ranks (FSDP, activation checkpointing
on, as `dmix cpt` runs by default, and once without it at 1 rank). Tokens/s is over training time only (the
first step, with its allocations, left out); MFU divides model FLOPs/s (`train_flops_per_token`) by the matmul
peak of `benchmarks/env_step.py`. Figures go to results/cpt_step.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results"


def env_speed(model: str, preset: str, steps: int, device: str) -> dict:
    """Train tokens/s of DataMix-v0 itself at this model (the proxy, or the 10x LLaMA as a proxy shape)."""
    import gymnasium as gym

    import dmix_gym  # noqa: F401
    from cpt.models import LLAMA_10X_PROXY
    from dmix_gym.scenario import make_scenario

    overrides = LLAMA_10X_PROXY if model == "llama-10x" else {}
    scenario = make_scenario("general-math", preset, max_steps=steps + 1, init="scratch", **overrides)  # speed only
    env = gym.make("DataMix-v0", scenario=scenario.to_dict(), device=device, progress=True, timing=True)
    base = env.unwrapped
    env.reset(seed=0)
    seconds, tokens = [], []
    for _ in range(steps + 1):
        _, _, _, _, info = env.step(np.full(base.num_domains, 1.0 / base.num_domains))
        seconds.append(float(info["train_seconds"]))
        tokens.append(int(info["tokens"].sum()))
    return {"tokens_per_s": sum(tokens[1:]) / sum(seconds[1:]), "model_config": base.model_config.to_dict(),
            "seq_len": base.shards.seq_len}


def cpt_speed(model: str, preset: str, steps: int, ranks: int, device: str, checkpointing: bool) -> dict:
    """Train tokens/s of `dmix cpt` on `ranks` ranks (from its metrics.jsonl), the first step left out."""
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(ranks), "--master-port",
                   str(29500 + os.getpid() % 400), "-m", "dmix", "cpt", "--policy", "baseline:uniform", "--model", model,
                   "--preset", preset, "--max-steps", str(steps + 1), "--out", out, "--device", device]
        if not checkpointing:
            command.append("--no-activation-checkpointing")
        threads = max(1, (os.cpu_count() or 1) // ranks) if device == "cpu" else 1
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "GLOO_SOCKET_IFNAME": "lo"}
        subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
        records = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()][1:]
    tokens = sum(sum(r["tokens"]) for r in records)
    return {"tokens_per_s": tokens / sum(r["train_seconds"] for r in records), "ranks": ranks, "checkpointing": checkpointing}


def main() -> None:
    import torch

    from benchmarks.env_step import matmul_peak
    from dmix_gym.model import train_flops_per_token

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["proxy", "llama-10x"])
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    peak = matmul_peak(torch.device(args.device))
    rows = []
    for model in args.models:
        env = env_speed(model, args.preset, args.steps, args.device)
        from transformers import LlamaConfig

        flops = train_flops_per_token(LlamaConfig(**env.pop("model_config")), env.pop("seq_len"))
        runs = [cpt_speed(model, args.preset, args.steps, r, args.device, True) for r in args.ranks]
        runs.append(cpt_speed(model, args.preset, args.steps, 1, args.device, False))
        for run in [{"ranks": "env", "checkpointing": False, **env}, *runs]:
            run.update({"model": model, "mfu": flops * run["tokens_per_s"] / peak,
                        "vs_env": run["tokens_per_s"] / env["tokens_per_s"]})
            rows.append(run)
            print(f"{model:10s} {str(run['ranks']):>4s} ranks, checkpointing {run['checkpointing']!s:5s}: "
                  f"{run['tokens_per_s']:9,.0f} tok/s, MFU {run['mfu']:.3f}, {run['vs_env']:.2f}x the env", flush=True)
    out = RESULTS / "cpt_step.json"
    out.write_text(json.dumps({"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                               "peak_flops": peak, "rows": rows}, indent=1))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
