#!/usr/bin/env bash
# Train every agent on the cpu Minari datasets (SFT, then CQL, IQL, TD3+BC and BC from it, and the Decision
# Transformer), once per feedback-features setting, then choose each algorithm's checkpoint (and setting) on
# validation seeds (never collected, never evaluated) and ship the chosen ones into the package as
# official:<protocol>/<algo>. Resumable: finished training and scored validation episodes are kept, so re-run it
# after a crash.
#   bash benchmarks/agents_cpu.sh [out-dir] [workers] [protocol]
# The datasets (from v2 on): the Algorithm 1 collection, and the scarce-target slice (8 Algorithm 1 episodes and 32
# noisy copies of the headroom study's schedule oracle, collected at general-math cpu with target_fraction 0.01).
# The settings (FEATURES, from v2 on): absolute agents in <out-dir>, relative ones in <out-dir>-relative; the
# selection chooses each algorithm over both, since the level of the feedback is what moves between tasks.
# dmix-bench-v3 adds dataset v2's domain-space episodes (benchmarks/dataset_v2.sh) and the response features:
#   DATASETS="dmix/general-math-cpu/trajectories-v1 dmix/general-math-cpu/scarce-target-v1
#             dmix/general-math-cpu/domain-space-v1" FEATURES="absolute relative response" SFT_TOP=0.1 \
#   bash benchmarks/agents_cpu.sh runs/agents-cpu-v3 2 dmix-bench-v3
# (SFT_TOP: the warm start imitates the top 10% of episodes by balanced return, which in dataset v2 are the noisy
# copies of the domain optimum, where v1's N = 10000 level drifts toward p*'s within-field split.)
# Across a scenario space's draws (issue #46): SPACE=source trains per-field agents on datasets of different domain
# spaces, and TRAIN_ONLY=1 stops before the selection, so that one selection later chooses over every folder:
#   DATASETS="$(ls datasets_builder/collections | sed -n 's|^\(train-v1-[0-9]*-cpu\)-domain-space-v1$|dmix/\1/domain-space-v1|p')" \
#   SPACE=source TRAIN_ONLY=1 FEATURES="relative response" SFT_TOP=0.1 bash benchmarks/agents_cpu.sh runs/agents-cpu-draws
set -euo pipefail
OUT=${1:-runs/agents-cpu-v2}
WORKERS=${2:-2}
PROTOCOL=${3:-dmix-bench-v2}
DATASETS=${DATASETS:-dmix/general-math-cpu/trajectories-v1 dmix/general-math-cpu/scarce-target-v1}
FEATURES=${FEATURES:-absolute relative}
FLAGS=()
for dataset in $DATASETS; do FLAGS+=(--dataset "$dataset"); done
if [[ -n ${SFT_TOP:-} ]]; then FLAGS+=(--sft-top "$SFT_TOP"); fi  # SFT on the top returns, not one Algorithm 1 level
FLAGS+=(--space "${SPACE:-fine}")
# Feedback standardised as the protocol's objective scores it (for v1's dataset first, the same statistics; across
# the draws, none of which has them, the reward would otherwise weigh the fields as the first draw's spread does).
FLAGS+=(--standardise-as "$PROTOCOL")
FOLDERS=()
for features in $FEATURES; do
  out=$OUT
  if [[ $features != absolute ]]; then out=$OUT-$features; fi
  for algo in sft ${ALGOS:-cql iql td3bc bc dt}; do
    /usr/bin/time -f "$algo ($features) train wall %e s, peak %M KB" dmix agents train "${FLAGS[@]}" --algo "$algo" \
      --features "$features" --out "$out" --no-progress
  done
  FOLDERS+=(--agents "$out")
done
if [[ -n ${TRAIN_ONLY:-} ]]; then exit 0; fi
# The selection is kept beside the benchmark's results, so the choice is reproducible and reviewable. SEEDS per task:
# v2's 7 validation tasks x 1 seed = 7 episodes per candidate (28 candidates: ~1.7 h on 2 cores); SEEDS=2 doubles
# that and keeps the episodes already scored.
# EXTRA_AGENTS: more folders to choose over (e.g. the per-field agents of the draws, trained with TRAIN_ONLY=1);
# VALIDATION_DRAWS (e.g. train-v1:1000-1004) and SPLITS (a domains: spec, e.g. `dmix leaderboard static-transfer`'s)
# pass through to the selection. SHORTLIST=K: every candidate plays each task's first validation seed, and only each
# algorithm's best K go on to the draws and further seeds (v3: 4 folders x 14 candidates would cost ~1,100 cpu
# episodes in full, ~630 with K = 3).
for extra in ${EXTRA_AGENTS:-}; do FOLDERS+=(--agents "$extra"); done
if [[ -n ${VALIDATION_DRAWS:-} ]]; then FOLDERS+=(--validation-draws "$VALIDATION_DRAWS"); fi
if [[ -n ${SHORTLIST:-} ]]; then FOLDERS+=(--shortlist "$SHORTLIST"); fi
if [[ -n ${SPLITS:-} ]]; then FOLDERS+=(--splits "$SPLITS"); fi
dmix agents select "${FOLDERS[@]}" --protocol "$PROTOCOL" --seeds "${SEEDS:-1}" --workers "$WORKERS" --ship \
  --out "benchmarks/results/model_selection/$PROTOCOL.json"
