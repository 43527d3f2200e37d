#!/usr/bin/env bash
# dmix-bench-v3 (issue #45) and the generalisation issue (#46) at cpu, end to end: three lanes that share the machine,
# each its own process group, each stage resuming where it stopped (re-run this after a crash, a stop or on another
# machine; what is finished is skipped). The lanes commit nothing: `commit` does, the results alone (logs, staged
# episodes, snapshots, shipped agents), as they land.
#   bash benchmarks/v3_cpu.sh [start] [workers]   start the lanes in the background and return (logs in runs/v3-lanes/)
#   bash benchmarks/v3_cpu.sh status              each lane's stage, since when, its log's last line, and what is done
#                                                 (benchmarks/v3_progress.py)
#   bash benchmarks/v3_cpu.sh pause|resume        SIGSTOP / SIGCONT every lane (e.g. around a CI run: nothing is lost)
#   bash benchmarks/v3_cpu.sh stop                end every lane's process group (its pool workers with it)
#   bash benchmarks/v3_cpu.sh commit              commit what the lanes have added to results (never code), e.g. every
#                                                 25 min: while sleep 1500; do bash benchmarks/v3_cpu.sh commit; done
# Trained agents go into the commit too (their selection candidates: benchmarks/agents_store.py), and `start` restores
# them, so a fresh machine does not train them again.
# The lanes, and the order each needs:
#   references: v3's domain-space searches (benchmarks/leaderboard_cpu.sh, REFERENCES_ONLY), then the rows that wait on
#               no agent (agent rows say "skipped" until shipped);
#   training:   the agents on v1 + scarce + dataset v2's in-distribution episodes (TRAIN_ONLY), then, as a filler at
#               a low weight, the unseen-scale task's references and baseline rows (benchmarks/unseen_scale.py);
#   data:       dataset v2 (the in-distribution levels, then the draws of train-v1, cheapest first:
#               benchmarks/dataset_v2.sh), per-field agents across the draws, then, once the training lane's agents
#               are trained, one selection over all four agents folders (validation seeds, v3's validation task and
#               validation draws nobody trained on; every candidate acting with Static-transfer's within-field splits
#               where its domains are not the task's; each algorithm's best 3 of the first rung go on: SHORTLIST);
#               the chosen ones ship as official:dmix-bench-v3/<algo>; once the references lane ends, the agent rows;
#               once the training lane ends, the best agent on unseen-scale.
# A lane that waits on another waits while that lane runs (or, for the agents, until they are trained), then does the
# other's stage itself if it did not finish.
# At 2 cores, from where session 29 found it: references ~3 h then rows ~5 h; dataset ~12 h, draws' agents ~3 h,
# selection ~7 h, agent rows ~3 h; unseen-scale ~10 h. Autogroup scheduling gives every process group an equal CPU
# share whatever its nice; the lanes set their group's weight (WEIGHTS below) where /proc/<pid>/autogroup exists.
set -euo pipefail
ACTION=${1:-start}
if [[ $ACTION == lane ]]; then LANE=$2 WORKERS=${3:-2}; else WORKERS=${2:-2}; fi
PROTOCOL=dmix-bench-v3
DIR=runs/v3-lanes
LANES=(references training data)
declare -A WEIGHTS=([references]=0 [training]=3 [data]=0)  # autogroup nice: the agents' training yields to episodes
IN_DIST="dmix/general-math-cpu/trajectories-v1 dmix/general-math-cpu/scarce-target-v1 dmix/general-math-cpu/domain-space-v1"

lane_pid() { [[ -f $DIR/$1.pid ]] && cat "$DIR/$1.pid"; }
running() {  # whether lane $1's process is alive (and is this script's lane, not a reused pid)
  local pid
  pid=$(lane_pid "$1") || return 1
  [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q "v3_cpu.sh lane $1"
}
stage() { echo "$* (since $(date -u +%FT%TZ))" > "$DIR/$LANE.stage"; echo "== $*"; }
wait_for() { stage "waiting for the $1 lane"; while running "$1"; do sleep 60; done; }
wait_done() { stage "waiting for $1 (the $2 lane)"; while [[ ! -f $DIR/$1.done ]] && running "$2"; do sleep 60; done; }
weigh() { echo "$1" > "/proc/$$/autogroup" 2> /dev/null || true; }
bin() { bash "$DIR/bin/$1" "${@:2}"; }  # the copies taken at start: editing benchmarks/ never changes a running lane
source "$(dirname "${BASH_SOURCE[0]}")/shipped_agents.sh"  # best_algo, splits_of (a copy in $DIR/bin for a lane)

training_agents() {
  stage "agents on the in-distribution datasets (training only)"
  OMP_NUM_THREADS=1 DATASETS="$IN_DIST" FEATURES="relative response" SFT_TOP=0.1 TRAIN_ONLY=1 \
    bin agents_cpu.sh runs/agents-cpu-v3 1 "$PROTOCOL"
  touch "$DIR/agents.done"
}
scale_task() {  # unseen-scale: its references, then its rows ($1: workers; the rest: more --policy rows)
  stage "unseen-scale: references and rows ${*:2}"
  python benchmarks/unseen_scale.py --protocol "$PROTOCOL" --workers "$1" "${@:2}"
}
rows() { stage "v3's references and rows"; bin leaderboard_cpu.sh "$WORKERS" "$PROTOCOL"; }

lane_references() {
  stage "v3's references"
  REFERENCES_ONLY=1 bin leaderboard_cpu.sh "$WORKERS" "$PROTOCOL"
  rows
}
lane_training() {
  training_agents
  weigh 19  # a filler: the other lanes' stages are what v3's rows wait on (alone, its workers take the machine)
  scale_task "$WORKERS"
}
lane_data() {
  stage "dataset v2"
  # Ahead of the other lanes: the last draws' episodes (one worker, one thread) take an hour or more each, and an
  # episode still running when a session's processes end is lost whole.
  weigh -5
  bin dataset_v2.sh 1 50
  weigh "${WEIGHTS[data]}"
  stage "per-field agents across the draws (training only)"
  local draws
  draws=$(ls datasets_builder/collections | sed -n 's|^\(train-v1-[0-9]*-cpu\)-domain-space-v1$|dmix/\1/domain-space-v1|p')
  OMP_NUM_THREADS=1 DATASETS="$draws" SPACE=source TRAIN_ONLY=1 FEATURES="relative response" SFT_TOP=0.1 \
    bin agents_cpu.sh runs/agents-cpu-v3-draws 1 "$PROTOCOL"
  wait_done agents training
  training_agents  # finished algorithms are skipped: seconds when the training lane trained them
  stage "model selection over the four agents folders"
  local splits
  splits=$(dmix leaderboard static-transfer --protocol "$PROTOCOL" --db "benchmarks/results/leaderboard/live/$PROTOCOL.sqlite")
  if [[ $splits != domains:* ]]; then splits=""; fi  # a line mixture: the agents keep p0 / p* within each field
  DATASETS="$IN_DIST" FEATURES="relative response" SFT_TOP=0.1 SPLITS="$splits" VALIDATION_DRAWS=train-v1:1000-1004 \
    SHORTLIST=3 EXTRA_AGENTS="runs/agents-cpu-v3-draws-relative runs/agents-cpu-v3-draws-response" \
    bin agents_cpu.sh runs/agents-cpu-v3 "$WORKERS" "$PROTOCOL"
  wait_for references
  rows
  wait_for training
  local best at guarded=()
  best=$(best_algo "$PROTOCOL")
  at=$(splits_of "$PROTOCOL" "$best")
  if [[ -f benchmarks/policies/$best-$PROTOCOL-guarded.json ]]; then  # written by the rows (leaderboard_cpu.sh)
    guarded=(--policy "benchmarks/policies/$best-$PROTOCOL-guarded.json$at")
  fi
  scale_task "$WORKERS" --policy "official:$PROTOCOL/$best$at" "${guarded[@]}" --policy benchmarks/policies/iql-v2-guarded.json
  stage "done"
}

signal_lanes() {  # $1: the signal, to every running lane's process group
  local lane
  for lane in "${LANES[@]}"; do
    if running "$lane"; then kill "-$1" -- "-$(lane_pid "$lane")" && echo "$lane: SIG$1"; fi
  done
}

case $ACTION in
  start)
    mkdir -p "$DIR/bin"
    for lane in "${LANES[@]}"; do
      if running "$lane"; then echo "the $lane lane is already running (pid $(lane_pid "$lane")): stop it first" >&2; exit 1; fi
    done
    rm -f "$DIR"/*.done
    python3 benchmarks/agents_store.py restore  # trained agents a fresh machine would otherwise train again (hours)
    cp benchmarks/v3_cpu.sh benchmarks/leaderboard_cpu.sh benchmarks/dataset_v2.sh benchmarks/agents_cpu.sh \
      benchmarks/shipped_agents.sh "$DIR/bin/"
    for lane in "${LANES[@]}"; do
      setsid nohup bash "$DIR/bin/v3_cpu.sh" lane "$lane" "$WORKERS" >> "$DIR/$lane.log" 2>&1 < /dev/null &
      echo $! > "$DIR/$lane.pid"
      echo "$lane lane: pid $!, log $DIR/$lane.log"
    done
    ;;
  lane)  # internal: one lane, in its own process group (started by `start`)
    declare -F "lane_$LANE" > /dev/null || { echo "no lane called $LANE (lanes: ${LANES[*]})" >&2; exit 2; }
    weigh "${WEIGHTS[$LANE]}"  # here, not at start: the lane's own group exists once setsid has run
    "lane_$LANE"
    ;;
  status)
    for lane in "${LANES[@]}"; do
      state=stopped
      if running "$lane"; then state="running, pid $(lane_pid "$lane")"; fi
      echo "$lane ($state): $(cat "$DIR/$lane.stage" 2> /dev/null || echo "never started")"
      if [[ -f $DIR/$lane.log ]]; then echo "  $(tail -c 2000 "$DIR/$lane.log" | tr '\r' '\n' | grep -av '^\s*$' | tail -n 1 | cut -c 1-150)"; fi
    done
    python benchmarks/v3_progress.py
    ;;
  commit)  # results only: the live database's consistent copy, reference logs, staged episodes, studies' outputs,
           # the finished agents' candidates (benchmarks/agents_store.py)
    python3 benchmarks/agents_store.py save runs/agents-cpu-v3-* > /dev/null
    dmix leaderboard backup --db "benchmarks/results/leaderboard/live/$PROTOCOL.sqlite" \
      --out "benchmarks/results/leaderboard/$PROTOCOL.sqlite" > /dev/null
    paths=()
    for path in benchmarks/results/leaderboard/live/references "benchmarks/results/leaderboard/$PROTOCOL.sqlite" \
                "benchmarks/results/leaderboard/staging-$PROTOCOL" datasets_builder/collections benchmarks/results/domain_gain \
                benchmarks/results/dataset_report benchmarks/results/model_selection benchmarks/results/unseen_scale \
                benchmarks/policies leaderboard/official benchmarks/results/agents; do  # policies: the rows' guard files
      if [[ -e $path ]]; then paths+=("$path"); fi
    done
    git add "${paths[@]}"
    if git diff --cached --quiet -- "${paths[@]}"; then echo "nothing new to commit"
    else git commit -qm "v3 references, dataset v2, agents and rows: progress" -- "${paths[@]}" && git log --oneline -1; fi
    ;;
  pause) signal_lanes STOP ;;
  resume) signal_lanes CONT ;;
  stop) signal_lanes TERM ;;
  *) echo "usage: bash benchmarks/v3_cpu.sh [start [workers] | status | pause | resume | stop | commit], got $ACTION" >&2
     exit 2 ;;
esac
