"""Entry point: ``python -m ume_jax.main --config=configs/default.py --workdir=DIR``.

Config overrides: ``--config.pretrain.num_epochs=3``; variants:
``--config=configs/default.py:small``. Multi-host: ``--distributed`` calls
``jax.distributed.initialize()`` (coordinator from the environment, as set by
TPU pods, SLURM, or ``launch/``'s scripts).
"""
from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Training configuration file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, logs and"
                               " results are written.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Call jax.distributed.initialize() first. On TPU"
    " pods, SLURM and similar clusters it finds its peers by itself;"
    " elsewhere give the three flags below.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "host:port of process 0.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None,
                                      "Number of processes in the job.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's rank.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  # Orbax and tfds log every file operation at INFO; keep our own output
  # readable unless the user asks for more with --verbosity.
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  import jax  # after flag parsing, so XLA flags set by launchers apply
  if _DISTRIBUTED.value:
    if jax.config.jax_platforms in ("cpu",) or _COORDINATOR.value:
      # CPU processes need a collectives backend for cross-process arrays.
      jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value,
                               _PROCESS_ID.value)
  logging.info("process %d/%d, %d local / %d global devices",
               jax.process_index(), jax.process_count(),
               jax.local_device_count(), jax.device_count())
  from ume_jax import errors, experiment
  try:
    experiment.run(_CONFIG.value, _WORKDIR.value)
  except errors.USER_ERRORS as e:
    # A bad config, data dir or checkpoint: one paragraph, no traceback.
    raise SystemExit(f"error: {e}") from None


def _parse_flags(argv):
  """absl's parser, with a bad ``--config.x=y`` override as one line of error
  instead of ml_collections' traceback."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    raise SystemExit(f"error: {e}") from None
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    # ml_collections wraps a KeyError's repr: unescape it for reading.
    detail = str(e).replace("\\n", " ").replace("\\'", "").replace("'", "")
    raise SystemExit(f"error: bad --config override in {argv[1:]}: unknown"
                     f" or invalid key {detail}") from None


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
