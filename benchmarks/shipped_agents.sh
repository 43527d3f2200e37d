# A protocol's shipped agents, as the scripts that run their rows name them (sourced by leaderboard_cpu.sh and
# v3_cpu.sh, which run from copies: this file travels with them).
best_algo() {  # the model selection's best algorithm for protocol $1 ($2: what to print before any selection)
  python3 - "$1" "${2:-}" <<'PY'
import json, pathlib, sys
from leaderboard.selection import ranked_algorithms
path = pathlib.Path(f"benchmarks/results/model_selection/{sys.argv[1]}.json")
chosen = json.loads(path.read_text())["chosen"] if path.is_file() else {}
if not chosen and not sys.argv[2]:
    sys.exit(f"no model selection for {sys.argv[1]} yet ({path})")
print(ranked_algorithms(chosen)[0] if chosen else sys.argv[2])
PY
}
splits_of() {  # "@domains:..." where protocol $1's shipped agent $2 acts with within-field splits, else nothing
  local file=leaderboard/official/agents/$1/$2.splits
  if [[ -f $file ]]; then echo "@$(cat "$file")"; fi
}
