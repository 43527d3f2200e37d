#!/usr/bin/env bash
# Train every agent on the cpu Minari dataset (SFT, then CQL, IQL, TD3+BC and BC from it, and the Decision
# Transformer), then choose each algorithm's checkpoint on validation seeds (never collected, never evaluated)
# and ship the chosen ones into the package as official:<protocol>/<algo>. Resumable: finished training and
# scored validation episodes are kept, so re-run it after a crash.
#   bash benchmarks/agents_cpu.sh [out-dir] [workers] [protocol]
set -euo pipefail
OUT=${1:-runs/agents-cpu-v1}
WORKERS=${2:-2}
PROTOCOL=${3:-dmix-bench-v2}
DATASET=${DATASET:-dmix/general-math-cpu/trajectories-v1}
for algo in sft ${ALGOS:-cql iql td3bc bc dt}; do
  /usr/bin/time -f "$algo train wall %e s, peak %M KB" dmix agents train --dataset "$DATASET" --algo "$algo" --out "$OUT" --no-progress
done
# The selection is kept beside the benchmark's results, so the choice is reproducible and reviewable.
dmix agents select --agents "$OUT" --protocol "$PROTOCOL" --seeds 2 --workers "$WORKERS" --ship \
  --out "benchmarks/results/model_selection/$PROTOCOL.json"
