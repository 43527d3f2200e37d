#!/usr/bin/env bash
# dmix-bench-v3 (issue #45) and the generalisation issue (#46) at cpu, end to end, in the order each stage needs the
# one before it. Every stage resumes where it stopped and commits nothing itself (commit its logs, staged episodes
# and snapshots as they land), so re-run this after a crash or a stop, on any machine:
#   bash benchmarks/v3_cpu.sh [workers]
# 1. v3's references: the domain-space searches of every task (benchmarks/leaderboard_cpu.sh, REFERENCES_ONLY);
# 2. dataset v2: the in-distribution levels, then the draws of train-v1, cheapest first (benchmarks/dataset_v2.sh);
# 3. per-field agents across the draws (SPACE=source), trained only;
# 4. agents on v1 + v2's in-distribution episodes, then one selection over both kinds, on validation seeds, v3's
#    validation task and validation draws nobody trained on, every candidate acting with Static-transfer's
#    within-field splits where its domains are not the task's, each algorithm's best 3 on the protocol's tasks going
#    on to the draws (SHORTLIST); the chosen ones ship as official:dmix-bench-v3/<algo>;
# 5. v3's rows (unchanged baselines take v2's episodes; benchmarks/leaderboard_cpu.sh);
# 6. the unseen-scale task: its references and rows, the best agent among them (benchmarks/unseen_scale.py).
# At 2 cores: 1 is ~6 h from where session 27 left it, 2 ~14 h, 3-4 several hours of training and ~630 cpu
# episodes of selection (~6 h), 5 ~5 h, 6 ~10 h. Stop a stage by ending its process group (kill -- -PGID).
# Stages 4's training, 5's baseline rows and 6 depend on neither the draws nor the agents; session 28 ran them as
# separate jobs beside 1-2 (each resumes here). With autogroup scheduling on, every setsid job shares the CPU
# equally whatever its nice; weigh one with `echo N > /proc/<pid>/autogroup`.
set -euo pipefail
WORKERS=${1:-2}
PROTOCOL=dmix-bench-v3
DB=benchmarks/results/leaderboard/live/$PROTOCOL.sqlite
REFERENCES_ONLY=1 bash benchmarks/leaderboard_cpu.sh "$WORKERS" "$PROTOCOL"
bash benchmarks/dataset_v2.sh "$WORKERS" 50
DRAWS=$(ls datasets_builder/collections | sed -n 's|^\(train-v1-[0-9]*-cpu\)-domain-space-v1$|dmix/\1/domain-space-v1|p')
DATASETS="$DRAWS" SPACE=source TRAIN_ONLY=1 FEATURES="relative response" SFT_TOP=0.1 \
  bash benchmarks/agents_cpu.sh runs/agents-cpu-v3-draws "$WORKERS" "$PROTOCOL"
SPLITS=$(dmix leaderboard static-transfer --protocol "$PROTOCOL" --db "$DB")
if [[ $SPLITS != domains:* ]]; then SPLITS=""; fi  # a line mixture: the agents keep p0 / p* within each field
DATASETS="dmix/general-math-cpu/trajectories-v1 dmix/general-math-cpu/scarce-target-v1 dmix/general-math-cpu/domain-space-v1" \
  FEATURES="relative response" SFT_TOP=0.1 SPLITS="$SPLITS" VALIDATION_DRAWS=train-v1:1000-1004 SHORTLIST=3 \
  EXTRA_AGENTS="runs/agents-cpu-v3-draws-relative runs/agents-cpu-v3-draws-response" \
  bash benchmarks/agents_cpu.sh runs/agents-cpu-v3 "$WORKERS" "$PROTOCOL"
bash benchmarks/leaderboard_cpu.sh "$WORKERS" "$PROTOCOL"
BEST=$(python3 -c "
import json
from leaderboard.selection import ranked_algorithms
chosen = json.load(open('benchmarks/results/model_selection/$PROTOCOL.json'))['chosen']
best = ranked_algorithms(chosen)[0]
print(f'official:$PROTOCOL/{best}' + ('@' + chosen[best]['splits'] if chosen[best].get('splits') else ''))")
python benchmarks/unseen_scale.py --protocol "$PROTOCOL" --workers "$WORKERS" --policy "$BEST" \
  --policy benchmarks/policies/iql-v2-guarded.json
