#!/usr/bin/env bash
# N processes of one job on this machine (CPU, gloo collectives): the code
# path of a multi-host run -- per-process input shards, global arrays, every
# process saving its part of each checkpoint -- without a cluster.
#
#   launch/local_multiprocess.sh 2 -- --config=configs/default.py:small \
#       --workdir=/tmp/ume_mp
#   DEVICES_PER_PROCESS=4 launch/local_multiprocess.sh 2 -- ...   # 8 devices
#
# Environment: DEVICES_PER_PROCESS (fake CPU devices per process; default:
# whatever XLA_FLAGS says, else 1), PORT (coordinator port; default: a free
# one), PYTHON (default: .venv/bin/python of this checkout, else python3),
# LOG_DIR (default: <workdir>/logs).
#
# Each process runs `python -m ume_jax.main` with UME_JAX_DISTRIBUTED=1 and
# its rank in UME_JAX_* variables, and logs to LOG_DIR/process_<i>.log. The
# script fails fast: when one process fails, the others are stopped, the
# tail of the failing log is printed and the exit status is that process's.
# On success it prints the tail of process 0's log. Ctrl-C or SIGTERM is
# passed on to every process (the trainer checkpoints on SIGTERM).
set -euo pipefail

usage() {
  # The header comment.
  awk 'NR == 1 || /^#SBATCH/ { next } /^#/ { sub(/^# ?/, ""); print; next }
    { exit }' "$0" >&2
  exit 2
}

[[ $# -ge 1 && $1 =~ ^[1-9][0-9]*$ ]] || usage
num=$1
shift
[[ ${1:-} == "--" ]] && shift

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -z ${PYTHON:-} ]]; then
  PYTHON=python3
  [[ -x $repo/.venv/bin/python ]] && PYTHON=$repo/.venv/bin/python
fi

workdir=""
prev=""
for arg in "$@"; do
  case $arg in
    --workdir=*) workdir=${arg#--workdir=} ;;
    *) [[ $prev == "--workdir" ]] && workdir=$arg ;;
  esac
  prev=$arg
done
[[ -n $workdir ]] || { echo "error: pass --workdir=DIR" >&2; exit 2; }
log_dir=${LOG_DIR:-$workdir/logs}
mkdir -p "$log_dir"

port=${PORT:-$("$PYTHON" -c 'import socket
s = socket.socket(); s.bind(("localhost", 0)); print(s.getsockname()[1])')}

xla_flags=${XLA_FLAGS:-}
if [[ -n ${DEVICES_PER_PROCESS:-} ]]; then
  # Replace an inherited device count rather than adding a second one.
  xla_flags=$(sed -E 's/--xla_force_host_platform_device_count=[0-9]+//g' \
    <<<"$xla_flags")
  xla_flags="$xla_flags --xla_force_host_platform_device_count=$DEVICES_PER_PROCESS"
fi

pids=()
failed=""
stop_all() {
  local sig=$1 pid
  for pid in "${pids[@]}"; do kill "-$sig" "$pid" 2>/dev/null || true; done
}
# After a failure the others cannot finish (or save) without their peer:
# kill them at once. Otherwise (Ctrl-C, SIGTERM) send SIGTERM, so the
# trainer saves a checkpoint, and SIGKILL whatever is left after 30 s.
cleanup() {
  [[ -n $failed ]] && { stop_all KILL; return; }
  stop_all TERM
  for _ in $(seq 30); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [[ $alive == 0 ]] && return
    sleep 1
  done
  stop_all KILL
}
trap cleanup EXIT
trap 'echo "interrupted: stopping all processes" >&2; exit 130' INT
trap 'echo "SIGTERM: stopping all processes" >&2; exit 143' TERM

echo "starting $num processes (coordinator localhost:$port), logs in $log_dir"
for ((i = 0; i < num; i++)); do
  JAX_PLATFORMS=cpu XLA_FLAGS=${xla_flags# } \
    PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" \
    UME_JAX_DISTRIBUTED=1 UME_JAX_COORDINATOR="localhost:$port" \
    UME_JAX_NUM_PROCESSES="$num" UME_JAX_PROCESS_ID="$i" \
    "$PYTHON" -u -m ume_jax.main "$@" >"$log_dir/process_$i.log" 2>&1 &
  pids+=($!)
done

# Poll rather than `wait -n`: we need to know *which* process ended.
running=$num
declare -A done_
while ((running > 0)); do
  for ((i = 0; i < num; i++)); do
    [[ -n ${done_[$i]:-} ]] && continue
    kill -0 "${pids[$i]}" 2>/dev/null && continue
    status=0
    wait "${pids[$i]}" || status=$?
    done_[$i]=1
    running=$((running - 1))
    if ((status != 0)); then
      failed=$i
      echo "process $i failed (exit status $status); stopping the others." >&2
      echo "---- last 40 lines of $log_dir/process_$i.log ----" >&2
      tail -n 40 "$log_dir/process_$i.log" >&2
      exit "$status"
    fi
  done
  sleep 0.2
done
trap - EXIT
echo "---- all $num processes succeeded; last 40 lines of process 0 ----"
tail -n 40 "$log_dir/process_0.log"
