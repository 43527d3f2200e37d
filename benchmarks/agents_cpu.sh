#!/usr/bin/env bash
# Train SFT and CQL agents on the cpu Minari dataset, then roll each saved policy (and the
# baselines) out in DataMix-v0 over 3 seeds, each rollout in a fresh process. Resumable: a
# finished training or rollout (its JSON) is skipped on a re-run.
#   bash benchmarks/agents_cpu.sh [out-dir] [policies...]
set -euo pipefail
OUT=${1:-runs/agents-cpu}
shift || true
POLICIES=${*:-"sft cql baseline:naive baseline:uniform baseline:start-state baseline:dbl baseline:regmix"}
DATASET=${DATASET:-dmix/general-math-cpu/trajectories-v1}
mkdir -p "$OUT/rollouts"
/usr/bin/time -f "train wall %e s, peak %M KB" dmix agents train --dataset "$DATASET" --algo cql --out "$OUT" --no-progress
for policy in $POLICIES; do
  case $policy in
    sft|cql) spec="$OUT/$policy.pt" ;;
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
