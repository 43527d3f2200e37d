"""Ship a protocol's tasks in the package: each task's built data and CPU base proxy, so every machine
evaluates on the data and base the official results were measured on, and skips building and pre-training.

Each task's data is built and its base pre-trained into the cache if they are not there yet, then copied to
`dmix_gym/data/built/<scenario>-<preset>-<spec hash>/` and `dmix_gym/checkpoints/base-<key>/` (the base key
hashes the model shape, the source tokens, the budget and the seed, so a changed scenario never picks up a
stale checkpoint). Already shipped folders are kept. Commit both folders.

    python benchmarks/ship_tasks.py --protocol dmix-bench-v2
"""

from __future__ import annotations

import argparse
import shutil

from dmix_gym.base_checkpoint import SHIPPED_BASES, base_dir
from dmix_gym.data.build import SHIPPED_BUILDS
from dmix_gym.utils.atomic import atomic_dir
from leaderboard.protocol import get_protocol

BUILD_PARTS = ("manifest.json", "shards", "eval", "tokenizer")


def ship(source, target, parts) -> None:
    """Copy `parts` of folder `source` to `target` atomically, unless `target` is already shipped."""
    if target.exists():
        return
    with atomic_dir(target) as tmp:
        for name in parts:
            copy = shutil.copytree if (source / name).is_dir() else shutil.copy2
            copy(source / name, tmp / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocol", default="dmix-bench-v2")
    args = parser.parse_args()
    for task in get_protocol(args.protocol).tasks:
        env = task.make_env(device="cpu", progress=True).unwrapped  # builds and pre-trains into the cache if needed
        build = SHIPPED_BUILDS / env.shards.root.name
        ship(env.shards.root, build, BUILD_PARTS)
        cached = base_dir(env.scenario, env.shards, env.model_config, env.device, env.cache_dir)
        base = SHIPPED_BASES / cached.name
        ship(cached, base, ("model.safetensors", "meta.json"))
        root = SHIPPED_BASES.parent.parent
        print(f"{task.name}: {build.relative_to(root)}, {base.relative_to(root)}")


if __name__ == "__main__":
    main()
