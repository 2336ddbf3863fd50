# Sourced by the S2S recipes (gpu_s2s_base.sh, cpu_s2s_refresh.sh).
# train_stage NAME WHAT LOG OVERRIDES...: `$PY train.py OVERRIDES` with its output in LOG,
# announced as "time NAME: WHAT"; on failure the log's tail and status 1. DRY_RUN=1 only
# prints the overrides (the tests compose them).
train_stage() {
  local name=$1 what=$2 log=$3
  shift 3
  if [ -n "${DRY_RUN:-}" ]; then
    echo "train.py $*"
    return
  fi
  echo "$(date +%T) $name: $what"
  $PY train.py "$@" >"$log" 2>&1 || { echo "$name failed:"; tail -30 "$log"; return 1; }
}
