#!/usr/bin/env bash
#SBATCH --job-name=ume_jax
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=16
#SBATCH --time=04:00:00
#SBATCH --output=slurm_logs/%x_%j.out
#SBATCH --open-mode=append
#SBATCH --signal=TERM@120
#SBATCH --requeue
#
# One ume_jax job on SLURM GPU nodes. From the repository root, either let
# the script submit itself with the sizes from the environment:
#
#   NODES=4 GPUS_PER_NODE=8 TIME=12:00:00 PARTITION=gpu \
#     launch/gpu_slurm.sh -- --config=configs/default.py --workdir=/shared/ume/run1
#
# or submit it with the #SBATCH defaults above (sbatch options override them;
# SLURM does not create the log folder):
#
#   mkdir -p slurm_logs && sbatch --nodes=4 launch/gpu_slurm.sh --config=configs/default.py \
#     --workdir=/shared/ume/run1
#
# Tasks: one per node by default, each driving all of its node's GPUs
# (JAX_LOCAL_DEVICE_IDS lists them; JAX would otherwise give each task only
# GPU SLURM_LOCALID); PER_GPU=1 runs one task per GPU instead (when
# submitting yourself: sbatch --ntasks-per-node=<gpus per node>).
# Every task runs `python -m ume_jax.main` with UME_JAX_DISTRIBUTED=1: JAX
# reads coordinator, task count and rank from SLURM's variables.
#
# - Logs: slurm_logs/<job name>_<job id>_r<restart>_task<rank>.log per task.
# - Fail fast: --kill-on-bad-exit=1 ends every task when one fails.
# - Time limit: --signal=TERM@120 sends the tasks SIGTERM 2 minutes before
#   the limit; the trainer saves a checkpoint and exits 143, and this script
#   requeues the job (REQUEUE=0 to not), which resumes from the checkpoint.
#   The workdir must be on a filesystem every node shares.
#
# Environment (self-submission): NODES (2), GPUS_PER_NODE (8), PER_GPU (0),
# TIME, PARTITION, ACCOUNT, QOS, CPUS_PER_TASK, SBATCH_EXTRA (more sbatch
# options); in the job: PYTHON (default .venv/bin/python), REQUEUE (1).
# DRY_RUN=1 prints the sbatch (outside a job) or srun (inside) command.
set -euo pipefail

DRY_RUN=${DRY_RUN:-0}

usage() {
  # The header comment, without the #SBATCH lines.
  awk 'NR == 1 || /^#SBATCH/ { next } /^#/ { sub(/^# ?/, ""); print; next }
    { exit }' "$0" >&2
  exit 2
}

show() {
  printf '+'
  printf ' %q' "$@"
  printf '\n'
}

run() {
  if [[ $DRY_RUN == 1 ]]; then show "$@"; else "$@"; fi
}

# Outside a job: submit this script, sized from the environment.
submit() {
  local nodes=${NODES:-2} gpus=${GPUS_PER_NODE:-8} tasks=1 opts repo env
  [[ ${PER_GPU:-0} == 1 ]] && tasks=$gpus
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  env="ALL,UME_SLURM_GPUS_PER_NODE=$gpus"
  opts=(--nodes="$nodes" --gpus-per-node="$gpus" --ntasks-per-node="$tasks"
    --chdir="$repo" --export="$env")
  [[ -n ${CPUS_PER_TASK:-} ]] && opts+=(--cpus-per-task="$CPUS_PER_TASK")
  [[ -n ${TIME:-} ]] && opts+=(--time="$TIME")
  [[ -n ${PARTITION:-} ]] && opts+=(--partition="$PARTITION")
  [[ -n ${ACCOUNT:-} ]] && opts+=(--account="$ACCOUNT")
  [[ -n ${QOS:-} ]] && opts+=(--qos="$QOS")
  # shellcheck disable=SC2206  # SBATCH_EXTRA is a list of options
  [[ -n ${SBATCH_EXTRA:-} ]] && opts+=($SBATCH_EXTRA)
  run mkdir -p "$repo/slurm_logs"  # SLURM does not create log folders
  run sbatch "${opts[@]}" "${BASH_SOURCE[0]}" "$@"
}

# GPUs per node, as this job sees them: sbatch's count, else SLURM's
# variables (SLURM_GPUS_ON_NODE; SLURM_GPUS_PER_NODE may read "h100:8").
gpus_per_node() {
  local n=${UME_SLURM_GPUS_PER_NODE:-${SLURM_GPUS_ON_NODE:-${SLURM_GPUS_PER_NODE:-}}}
  n=${n##*:}
  if [[ -z $n ]]; then
    n=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
  fi
  echo "${n:-0}"
}

# Inside the job (the batch step, on the first node).
in_job() {
  local tasks_per_node=${SLURM_NTASKS_PER_NODE:-1} gpus py status
  tasks_per_node=${tasks_per_node%%(*}  # "1(x2)" -> "1"
  gpus=$(gpus_per_node)
  py=${PYTHON:-.venv/bin/python}
  run mkdir -p slurm_logs
  export UME_JAX_DISTRIBUTED=1
  # srun no longer inherits sbatch's --cpus-per-task (SLURM >= 22.05).
  [[ -n ${SLURM_CPUS_PER_TASK:-} ]] &&
    export SRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK
  if [[ $tasks_per_node == 1 && $gpus -gt 1 ]]; then
    # One task per node: it owns every GPU of its node.
    JAX_LOCAL_DEVICE_IDS=$(seq -s, 0 $((gpus - 1)))
    export JAX_LOCAL_DEVICE_IDS
  fi
  echo "job $SLURM_JOB_ID (restart ${SLURM_RESTART_COUNT:-0}):" \
    "${SLURM_JOB_NUM_NODES:-?} nodes x $tasks_per_node tasks, $gpus GPUs/node," \
    "JAX_LOCAL_DEVICE_IDS=${JAX_LOCAL_DEVICE_IDS:-(unset: GPU SLURM_LOCALID)}"
  status=0
  run srun --kill-on-bad-exit=1 \
    --output="slurm_logs/%x_%j_r${SLURM_RESTART_COUNT:-0}_task%t.log" \
    "$py" -u -m ume_jax.main "$@" || status=$?
  if [[ $status == 143 && ${REQUEUE:-1} == 1 ]]; then
    # The trainer saved a checkpoint on SIGTERM (time limit or preemption).
    echo "tasks stopped on SIGTERM after saving; requeueing $SLURM_JOB_ID"
    run scontrol requeue "$SLURM_JOB_ID"
  fi
  exit "$status"
}

[[ ${1:-} == "-h" || ${1:-} == "--help" ]] && usage
[[ ${1:-} == "--" ]] && shift
if [[ -n ${SLURM_JOB_ID:-} ]]; then
  in_job "$@"
else
  [[ $# -gt 0 ]] || usage
  submit "$@"
fi
