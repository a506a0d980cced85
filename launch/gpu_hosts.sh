#!/usr/bin/env bash
# One process per GPU host (all local GPUs per process). Run on every host
# with the same COORDINATOR (host:port of host 0), NUM_HOSTS and its own
# HOST_ID, e.g. from a scheduler's environment:
#
#   COORDINATOR=10.0.0.1:1234 NUM_HOSTS=2 HOST_ID=0 launch/gpu_hosts.sh \
#       --config=configs/default.py --workdir=/shared/ume/run1
#
# Under SLURM, plain `srun python -m ume_jax.main --distributed ...` works:
# jax.distributed reads SLURM's environment.
set -euo pipefail
: "${COORDINATOR:?}" "${NUM_HOSTS:?}" "${HOST_ID:?}"
exec "${PYTHON:-.venv/bin/python}" -m ume_jax.main --distributed \
  --coordinator_address="$COORDINATOR" --num_processes="$NUM_HOSTS" \
  --process_id="$HOST_ID" "$@"
