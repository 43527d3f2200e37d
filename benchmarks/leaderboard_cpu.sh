#!/usr/bin/env bash
# Run every built-in method through a cpu protocol (default dmix-bench-v2), then write the table, the report and
# the protocol's official results file. Needs the cpu Minari dataset and the shipped agents (benchmarks/agents_cpu.sh).
# Resumable: the results database lives in the repository (commit it as it grows), and stored reference and
# submission episodes are never re-run, so re-run this after a crash or on another machine.
#   bash benchmarks/leaderboard_cpu.sh [workers] [protocol]     (REFERENCES_ONLY=1: stop after the references)
# The run writes to a live database under live/ (not committed: git would copy it mid-write); after every row a
# consistent copy (SQLite's backup) lands at benchmarks/results/leaderboard/<protocol>.sqlite, which is committed,
# and a fresh machine starts its live database from that copy. Reference episodes are logged under live/references/
# (JSONL, committed as they grow).
set -euo pipefail
WORKERS=${1:-2}
PROTOCOL=${2:-dmix-bench-v2}
SNAPSHOT=${SNAPSHOT:-benchmarks/results/leaderboard/$PROTOCOL.sqlite}
DB=${DB:-benchmarks/results/leaderboard/live/$PROTOCOL.sqlite}
mkdir -p "$(dirname "$DB")"
if [[ ! -f "$DB" && -f "$SNAPSHOT" ]]; then cp "$SNAPSHOT" "$DB"; fi  # a snapshot at rest is a consistent database
# The baselines' proxy runs stage beside the database, so a run moved to another machine keeps them too.
export DMIX_STAGING_DIR=${DMIX_STAGING_DIR:-$PWD/benchmarks/results/leaderboard/staging-$PROTOCOL}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$((($(nproc) + WORKERS - 1) / WORKERS))}
snapshot() { dmix leaderboard backup --db "$DB" --out "$SNAPSHOT" > /dev/null; }
submit() { /usr/bin/time -f "$2: wall %e s" dmix leaderboard submit --protocol "$PROTOCOL" --db "$DB" --workers "$WORKERS" \
  --policy "$1" --name "$2" | tail -n 3; snapshot; }
# An agent row waits until its checkpoint ships (benchmarks/agents_cpu.sh); re-run this script after that.
# An agent chosen with within-field splits (dmix agents select --splits) acts with them: <algo>.splits beside it.
source "$(dirname "${BASH_SOURCE[0]}")/shipped_agents.sh"  # best_algo, splits_of
agent() {
  local shipped=leaderboard/official/agents/$PROTOCOL/$1
  if compgen -G "$shipped.*" > /dev/null; then submit "official:$PROTOCOL/$1$(splits_of "$PROTOCOL" "$1")" "$2"
  else echo "$2: skipped, official:$PROTOCOL/$1 is not shipped yet (bash benchmarks/agents_cpu.sh)"; fi
}
# The references first (from v2 on a search: several hours at cpu, resumable episode by episode).
# v3's searches extend v2's (same tasks, seeds, objective and env; v2's episodes re-run here to 2e-15, see README):
# its logs start as v2's, so the line and schedule searches are read back and only the domain search runs.
LOGS=$(dirname "$DB")/references
if [[ $PROTOCOL == dmix-bench-v3 && ! -d $LOGS/dmix-bench-v3 && -d $LOGS/dmix-bench-v2 ]]; then
  cp -r "$LOGS/dmix-bench-v2" "$LOGS/dmix-bench-v3"
fi
dmix leaderboard references --protocol "$PROTOCOL" --db "$DB" --workers "$WORKERS"
snapshot
if [[ -n ${REFERENCES_ONLY:-} ]]; then exit 0; fi
# static-transfer (v2 on): the training task's best confirmed static mixture (v3 on: a domain mixture, by role and
# domain name), held unchanged on every task.
TRANSFER=$(dmix leaderboard static-transfer --protocol "$PROTOCOL" --db "$DB" 2> /dev/null || true)
if [[ -n "$TRANSFER" ]]; then submit "$TRANSFER" "Static-transfer"; fi
# A row whose policy (same fingerprint) finished an earlier protocol on tasks this one shares unchanged takes those
# episodes instead of re-running them (leaderboard.submit.shared_episodes): v3's unchanged baselines take v2's.
# The core rows (five baselines, the model selection's best algorithm, SFT and CQL), then the rest.
declare -A AGENT_NAMES=([sft]="SFT agent" [cql]="CQL agent" [iql]="IQL agent" [td3bc]="TD3+BC agent" [bc]="BC agent"
                        [dt]="DT agent")
BEST=$(best_algo "$PROTOCOL" td3bc)
submit baseline:naive Naive
submit baseline:uniform Uniform
submit baseline:start-state Start-state
submit baseline:dbl DBL
submit baseline:regmix RegMix
agent "$BEST" "${AGENT_NAMES[$BEST]}"
for algo in sft cql; do if [[ $algo != "$BEST" ]]; then agent "$algo" "${AGENT_NAMES[$algo]}"; fi; done
submit baseline:natural Natural
submit baseline:odm ODM
for algo in td3bc iql bc dt; do if [[ $algo != "$BEST" ]]; then agent "$algo" "${AGENT_NAMES[$algo]}"; fi; done
submit baseline:aioli Aioli
submit baseline:doremi DoReMi
submit baseline:mixing-laws "Mixing laws"
# v3 on: the row that asks what RL adds over regression on the agents' own data (no proxy runs): v3's agents' data,
# dataset v2's domain-space episodes included (benchmarks/policies/logged-regression-v3.json).
# Its conditioned twin plays that mixture for 2 of the 20 steps (set a priori, not tuned), then the mixture a second
# regression predicts best from what those steps moved: a schedule read off the task's response, as an agent's.
if [[ $PROTOCOL != dmix-bench-v2* ]]; then
  submit benchmarks/policies/logged-regression-v3.json "Logged regression"
  submit benchmarks/policies/logged-regression-conditioned-v3.json "Logged regression (conditioned)"
fi
# v3 on: Static-transfer made to last (baselines.lasting: from the second step no target field takes more than its
# data left spread over the steps left): what a rule that only reads the data left adds where a corpus runs out,
# the bar for an agent that reads it too. Where no corpus runs out its episodes are Static-transfer's own.
if [[ $PROTOCOL != dmix-bench-v2* && -n "$TRANSFER" ]]; then submit "$TRANSFER@lasting" "Static-transfer, lasting"; fi
# v3 on: v2's shipped best agent, as it shipped (its episodes are v2's: the tasks are unchanged, so none re-runs).
# And guarded by its training data's support (agents.support, benchmarks/policies/iql-v2-guarded.json): the agent
# while its states and first move are ones the data has, the data's best episodes' mean mixture from the first step
# they are not.
if [[ $PROTOCOL == dmix-bench-v3 ]]; then
  submit official:dmix-bench-v2/iql "IQL agent (v2)"
  submit benchmarks/policies/iql-v2-guarded.json "IQL agent (v2), guarded"
fi
# v3 on: the model selection's best agent guarded the same way, by the datasets and space it records it trained on,
# in its own feedback units (a hedge against collapse off its data; the DT reads no state tokens, so it has none).
# Fitted once (benchmarks/policies/<algo>-<protocol>-guarded.json, committed): a refit is another file, another row.
if [[ $PROTOCOL == dmix-bench-v3 && $BEST != dt && -f leaderboard/official/agents/$PROTOCOL/$BEST.pt ]]; then
  GUARDED=benchmarks/policies/$BEST-$PROTOCOL-guarded.json
  if ! python3 -c "from leaderboard.registry import load_policy; load_policy('$GUARDED')" 2> /dev/null; then
    dmix agents guard --agent "leaderboard/official/agents/$PROTOCOL/$BEST.pt" --out "$GUARDED"
  fi
  submit "$GUARDED$(splits_of "$PROTOCOL" "$BEST")" "${AGENT_NAMES[$BEST]}, guarded"
fi
dmix leaderboard show --protocol "$PROTOCOL" --db "$DB"
# A row above ref_max beyond noise runs on the ceiling's confirmation seeds; ahead there too (paired), the reference moves.
dmix leaderboard ceilings --protocol "$PROTOCOL" --db "$DB" --confirm --workers "$WORKERS" | tail -n 12
snapshot
dmix leaderboard report --protocol "$PROTOCOL" --db "$DB" --out "runs/leaderboard-$PROTOCOL"
dmix leaderboard export --protocol "$PROTOCOL" --db "$DB"
