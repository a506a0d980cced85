#!/usr/bin/env bash
# N processes of one job on this machine (CPU, gloo collectives): the same
# code path as a multi-host run — per-process input shards, global arrays,
# every process saving its part of each checkpoint.
#
#   launch/local_processes.sh 2 --config=configs/default.py:small --workdir=/tmp/ume_mp
#
# Each process logs to <workdir>/logs/process_<i>.log; the script fails as
# soon as any process fails, and stops the others.
set -euo pipefail
num=${1:?usage: $0 NUM_PROCESSES FLAGS...}; shift
workdir=$(printf '%s\n' "$@" | sed -n 's/^--workdir=//p' | tail -n 1)
[ -n "$workdir" ] || { echo "pass --workdir=DIR" >&2; exit 2; }
port=${PORT:-$((20000 + RANDOM % 20000))}
mkdir -p "$workdir/logs"
PY=${PYTHON:-python}
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
for ((i = 0; i < num; i++)); do
  JAX_PLATFORMS=cpu "$PY" -m ume_jax.main --distributed \
    --coordinator_address="localhost:$port" --num_processes="$num" \
    --process_id="$i" "$@" >"$workdir/logs/process_$i.log" 2>&1 &
  pids+=($!)
done
status=0
for ((i = 0; i < num; i++)); do
  if ! wait -n; then status=1; echo "a process failed; see $workdir/logs/" >&2; break; fi
done
[ $status -eq 0 ] && cat "$workdir/logs/process_0.log" | tail -n 40
exit $status
