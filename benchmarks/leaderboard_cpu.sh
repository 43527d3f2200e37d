#!/usr/bin/env bash
# Run every built-in method through a cpu protocol (default dmix-bench-v1) and write the table and report.
# Resumable: stored reference and submission episodes are never re-run, so re-run this after a crash.
# Needs the cpu Minari dataset and trained agents (bash benchmarks/agents_cpu.sh runs/agents-cpu-v2).
#   bash benchmarks/leaderboard_cpu.sh [agents-dir] [workers] [protocol]
set -euo pipefail
AGENTS=${1:-runs/agents-cpu-v2}
WORKERS=${2:-2}
PROTOCOL=${3:-dmix-bench-v1}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$((($(nproc) + WORKERS - 1) / WORKERS))}
submit() { /usr/bin/time -f "$2: wall %e s" dmix leaderboard submit --protocol "$PROTOCOL" --workers "$WORKERS" --policy "$1" --name "$2" | tail -n 3; }
submit baseline:naive Naive
submit baseline:uniform Uniform
submit baseline:start-state Start-state
submit baseline:natural Natural
submit baseline:odm ODM
submit baseline:aioli Aioli
submit baseline:dbl DBL
submit baseline:regmix RegMix
submit baseline:doremi DoReMi
submit baseline:mixing-laws "Mixing laws"
submit "$AGENTS/sft.pt" "SFT agent"
submit "$AGENTS/cql.pt" "CQL agent"
submit "$AGENTS/iql.pt" "IQL agent"
submit "$AGENTS/td3bc.pt" "TD3+BC agent"
submit "$AGENTS/bc.pt" "BC agent"
submit "$AGENTS/dt.json" "DT agent"
dmix leaderboard show --protocol "$PROTOCOL"
dmix leaderboard report --protocol "$PROTOCOL" --out runs/leaderboard-cpu
