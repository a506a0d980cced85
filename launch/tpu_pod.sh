#!/usr/bin/env bash
# Runs one job on every host of a Cloud TPU pod slice. jax.distributed finds
# the peers itself on TPU, so each host runs the same command.
#
#   TPU_NAME=my-v5e-32 ZONE=us-west4-a launch/tpu_pod.sh \
#       --config=configs/default.py --workdir=gs://bucket/ume/run1
#
# Assumes the repo is checked out at ~/ume_jax on each host with `make`'s
# virtualenv built (`make .venv/.installed`). Per-host logs go to
# ~/ume_logs/<host>.log on each host; the command fails if any host fails.
set -euo pipefail
: "${TPU_NAME:?set TPU_NAME}" "${ZONE:?set ZONE}"
args=$(printf '%q ' "$@")
gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone "$ZONE" --worker=all \
  --command "cd ~/ume_jax && mkdir -p ~/ume_logs && \
    .venv/bin/python -m ume_jax.main --distributed $args \
    2>&1 | tee ~/ume_logs/\$(hostname).log; exit \${PIPESTATUS[0]}"
