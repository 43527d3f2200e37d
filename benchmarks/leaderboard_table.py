"""How long a leaderboard table takes to rank, each row's IQM interval (a stratified bootstrap) included: what
`dmix leaderboard show` and every `submit` spend after their episodes.

    python benchmarks/leaderboard_table.py [--db PATH] [--protocol VERSION]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from leaderboard.store import Store
    from leaderboard.table import ranked

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=str(ROOT / "benchmarks" / "results" / "leaderboard" / "dmix-bench-v3.sqlite"))
    parser.add_argument("--protocol", default="dmix-bench-v3")
    args = parser.parse_args()
    start = time.perf_counter()
    rows = ranked(Store(args.db), args.protocol)
    print(f"{args.protocol}: {len(rows)} rows ranked in {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
