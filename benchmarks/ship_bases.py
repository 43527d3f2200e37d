"""Ship the CPU base checkpoints of a protocol's tasks in the package, so a fresh machine skips pre-training them.

Each task's base proxy is pre-trained into the cache if it is not there yet, then copied to
`dmix_gym/checkpoints/base-<key>/` (the key hashes the model shape, the source tokens, the budget and the
seed, so a changed scenario never picks up a stale checkpoint). Commit the folder.

    python benchmarks/ship_bases.py --protocol dmix-bench-v1
"""

from __future__ import annotations

import argparse
import shutil

from dmix_gym.base import SHIPPED_BASES, base_dir
from dmix_gym.utils.atomic import atomic_dir
from leaderboard.protocol import get_protocol


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocol", default="dmix-bench-v1")
    args = parser.parse_args()
    for task in get_protocol(args.protocol).tasks:
        env = task.make_env(device="cpu", progress=True).unwrapped  # pre-trains into the cache if needed
        cached = base_dir(env.scenario, env.shards, env.model_config, env.device, env.cache_dir)
        shipped = SHIPPED_BASES / cached.name
        if not shipped.exists():
            with atomic_dir(shipped) as tmp:
                for name in ("model.safetensors", "meta.json"):
                    shutil.copy2(cached / name, tmp / name)
        print(f"{task.name}: {shipped.relative_to(SHIPPED_BASES.parent.parent)}")


if __name__ == "__main__":
    main()
