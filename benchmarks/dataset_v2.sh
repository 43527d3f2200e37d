#!/usr/bin/env bash
# Dataset v2 (Minari ids dmix/<scenario>/domain-space-v1), designed once for both issues: the domain-space dataset of
# dmix-bench-v3 (#45) on the in-distribution scenario, extended across draws of the training scenario space (#46).
# Resumable (every finished episode is staged atomically under datasets_builder/collections/, committed as it grows);
# re-run to continue on any machine.
#   bash benchmarks/dataset_v2.sh [workers] [draws]
# Behaviour levels (datasets_builder.behaviours), each with its own quality label:
#   in-distribution: Dirichlet at concentrations 0.3, 1 and 3 (16 each), Algorithm 1 toward tilted targets (16), and
#   noisy copies (8 each) of five searched static mixtures from the v3 references, the optimum and points 1/8,
#   1/4, 1/2 and 3/4 down the search's ranking, which must have run first
#   (benchmarks/leaderboard_cpu.sh ... dmix-bench-v3); no Algorithm 1 episodes: dataset v1 holds 128 of this
#   scenario, and agents train on v1 + v2 together (same scenario, same domain space). Plan seed 2, so no episode
#   repeats one of v1's env seeds;
#   each draw of train-v1, cheapest first (`dmix scenarios draw --by-cost`: an episode's training FLOPs against the
#   cpu preset's), so the breadth lands first and the ladder's large proxies last: Algorithm 1 at N = 1 and 1000
#   (4), Dirichlet at 0.3 and 3 (2 each), tilted (2); a draw whose episode costs over 2 cpu episodes gets half of
#   each level (5 episodes: 38 draws x 10 + 12 x 5 = 440 episodes, about 570 cpu episodes of compute).
# Cost at cpu: about 75 s an episode on one core; 104 in-distribution episodes (about 65 min on 2 cores), then the
# draws, each with its data build and base proxy (1-3 min).
set -euo pipefail
WORKERS=${1:-2}
DRAWS=${2:-50}
export DMIX_STAGING_DIR=${DMIX_STAGING_DIR:-$PWD/datasets_builder/collections}
LOGS=benchmarks/results/leaderboard/live/references/dmix-bench-v3
mkdir -p runs/dataset-v2
python3 - "$LOGS/in-distribution.jsonl" > runs/dataset-v2/in-distribution.json <<'PY'
import json, sys
from collections import defaultdict
scores = defaultdict(list)
for line in open(sys.argv[1]):
    r = json.loads(line)
    static = r["label"].startswith(("domains:", "static:target-share=")) and ";" not in r["label"]  # no schedules
    if static and 5_000_000 <= r["seed"] < 5_001_000:
        scores[r["label"]].append(r["score"])
ranked = sorted((l for l, v in scores.items() if len(v) >= 2), key=lambda l: -sum(scores[l]) / len(scores[l]))
# expert to poor, as D4RL mixes levels: the optimum and the searched points at 1/8, 1/4, 1/2 and 3/4 down the ranking
ranks = sorted({0, len(ranked) // 8, len(ranked) // 4, len(ranked) // 2, 3 * len(ranked) // 4})
print(json.dumps({"dirichlet": {"0.3": 16, "1": 16, "3": 16}, "tilted": 16,
                  "near": {f"searched-rank{r}": ranked[r] for r in ranks}, "near_episodes": 8}))
PY
dmix collect --scenario general-math --preset cpu --name domain-space --trajectories 0 --seed 2 --workers "$WORKERS" \
  --behaviours runs/dataset-v2/in-distribution.json --publish
echo '{"dirichlet": {"0.3": 2, "3": 2}, "tilted": 2}' > runs/dataset-v2/draw.json
echo '{"dirichlet": {"0.3": 1, "3": 1}, "tilted": 1}' > runs/dataset-v2/draw-costly.json
dmix scenarios draw --space train-v1 --count "$DRAWS" --out runs/dataset-v2/scenarios --by-cost > runs/dataset-v2/draws.tsv
while IFS=$'\t' read -r -u 3 scenario cost; do
  if awk -v cost="$cost" 'BEGIN { exit !(cost <= 2) }'; then plan=(--trajectories 4 --behaviours runs/dataset-v2/draw.json)
  else plan=(--trajectories 2 --behaviours runs/dataset-v2/draw-costly.json); fi
  dmix collect --scenario "$scenario" --name domain-space "${plan[@]}" --qualities 1,1000 --workers "$WORKERS" --publish
  python benchmarks/dataset_report.py --space train-v1 > /dev/null  # the draws so far, a row each
done 3< runs/dataset-v2/draws.tsv
