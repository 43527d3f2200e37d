#!/usr/bin/env bash
# Train the SFT agent and, from it, each offline RL agent (CQL, IQL, TD3+BC, BC) on the cpu Minari dataset, then roll each saved policy (and the
# baselines) out in DataMix-v0 over 3 seeds, each rollout in a fresh process. Resumable: a
# finished training or rollout (its JSON) is skipped on a re-run.
#   bash benchmarks/agents_cpu.sh [out-dir] [policies...]
set -euo pipefail
OUT=${1:-runs/agents-cpu}
shift || true
ALGOS=${ALGOS:-"cql iql td3bc bc dt"}
POLICIES=${*:-"sft $ALGOS baseline:naive baseline:uniform baseline:start-state baseline:natural baseline:odm baseline:aioli baseline:dbl baseline:regmix baseline:doremi baseline:mixing-laws"}
DATASET=${DATASET:-dmix/general-math-cpu/trajectories-v1}
mkdir -p "$OUT/rollouts"
for algo in $ALGOS; do
  /usr/bin/time -f "$algo train wall %e s, peak %M KB" dmix agents train --dataset "$DATASET" --algo "$algo" --out "$OUT" --no-progress
done
for policy in $POLICIES; do
  case $policy in
    sft|cql|iql|td3bc|bc) spec="$OUT/$policy.pt" ;;
    dt) spec="$OUT/dt.json" ;;
    *) spec=$policy ;;
  esac
  for seed in 0 1 2; do
    json="$OUT/rollouts/${policy//:/-}-seed$seed.json"
    [ -f "$json" ] && continue
    dmix agents rollout --policy "$spec" --preset cpu --seed "$seed" --plot "${json%.json}.png" --json "$json"
  done
done
python3 - "$OUT" <<'PY'
import json, sys, pathlib, collections
rows = collections.defaultdict(list)
for f in sorted(pathlib.Path(sys.argv[1], "rollouts").glob("*.json")):
    r = json.loads(f.read_text())
    rows[f.stem.rsplit("-seed", 1)[0]].append(r)
for name, rs in rows.items():
    ret = [r["return"] for r in rs]
    fb = {k: sum(r["final_feedback"][k] for r in rs) / len(rs) for k in rs[0]["final_feedback"]}
    print(f"{name:24s} seeds={len(rs)} return={sum(ret)/len(ret):+.4f} (min {min(ret):+.4f} max {max(ret):+.4f}) "
          + " ".join(f"f({k})={v:.4f}" for k, v in fb.items()))
PY
