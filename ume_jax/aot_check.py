"""Compile every train step of a config for a topology, without training.

  python -m ume_jax.aot_check --config=configs/mmimdb.py --num_devices=64 \\
      --config.mesh.fsdp=4 --config.data.manual_dir=/data/mmimdb
  python -m ume_jax.aot_check --config=configs/default.py --topology=v5e:4x4

``--num_devices=N`` compiles for N fake CPU devices on this host (the mesh
and shardings of an N-chip job); ``--topology`` for a named TPU topology
(needs libtpu). Prints one line per training run and a JSON report to
``--output`` if given. Exit status 1 with one paragraph when a step cannot
compile for that topology.
"""
import json
import os

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.",
                                          lock_config=True)
_NUM_DEVICES = flags.DEFINE_integer(
    "num_devices", None, "Compile for this many fake CPU devices.")
_TOPOLOGY = flags.DEFINE_string("topology", None,
                                "TPU topology name, e.g. v5e:4x4.")
_OUTPUT = flags.DEFINE_string("output", None, "Write the report here (JSON).")
flags.mark_flags_as_required(["config"])


def main(argv):
  del argv
  if _NUM_DEVICES.value:
    # Before jax starts its backend: the host platform's device count.
    os.environ["JAX_PLATFORMS"] = "cpu"
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_"
        f"device_count={_NUM_DEVICES.value}").strip()
  # Imported only now: the device count above must be set before jax starts.
  from ume_jax import errors, experiment  # pylint: disable=g-import-not-at-top
  from ume_jax.train import aot  # pylint: disable=g-import-not-at-top
  from ume_jax.infra import paths  # pylint: disable=g-import-not-at-top
  try:
    devices = aot.topology_devices(_TOPOLOGY.value) if _TOPOLOGY.value \
        else None
    report = experiment.compile_check(_CONFIG.value, devices)
  except errors.USER_ERRORS as e:
    raise SystemExit(f"error: {e}") from None
  for r in report:
    print(f"{r['stage']:>8} {r['method']:<24} mesh {r['mesh']} batch"
          f" {r['batch_size']}: compiled in {r['compile_s']} s, params"
          f" {r['params_mb']} MB, per device {r['argument_mb_per_device']} MB"
          f" arguments + {r['temp_mb_per_device']} MB temporaries")
  if _OUTPUT.value:
    paths.write_text(_OUTPUT.value, json.dumps(report, indent=1))


if __name__ == "__main__":
  app.run(main)
