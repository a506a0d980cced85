"""Entry point: ``python -m ume_jax.main --config=configs/default.py --workdir=DIR``.

Config overrides: ``--config.pretrain.num_epochs=3``; variants:
``--config=configs/default.py:small``. Several processes (TPU pods, SLURM,
``launch/``'s scripts): ``--distributed`` or ``UME_JAX_DISTRIBUTED=1`` starts
JAX's distributed runtime first; see ``distributed.py`` for where the peers
come from.
"""
from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Training configuration file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, logs and"
                               " results are written.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Start jax.distributed first (also: env"
    " UME_JAX_DISTRIBUTED=1). On TPU pods, SLURM and Open MPI it finds its"
    " peers by itself; elsewhere give the three flags below.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0 (env"
    " UME_JAX_COORDINATOR).")
_NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", None, "Number of processes in the job (env"
    " UME_JAX_NUM_PROCESSES).")
_PROCESS_ID = flags.DEFINE_integer(
    "process_id", None, "This process's rank, 0..num_processes-1 (env"
    " UME_JAX_PROCESS_ID).")
_TIMEOUT = flags.DEFINE_integer(
    "distributed_timeout_s", 900, "How long to wait for every process to"
    " join before giving up.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  # Orbax and tfds log every file operation at INFO; keep our own output
  # readable unless the user asks for more with --verbosity.
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  config = _load_config()
  from ume_jax.infra import distributed
  try:
    distributed.initialize(
        _DISTRIBUTED.value, coordinator_address=_COORDINATOR.value,
        num_processes=_NUM_PROCESSES.value, process_id=_PROCESS_ID.value,
        timeout_s=_TIMEOUT.value)
  except distributed.DistributedError as e:
    raise SystemExit(f"error: {e}") from None
  # Imported after the runtime started: nothing may touch a JAX backend
  # before jax.distributed.initialize.
  from ume_jax import errors, experiment
  from ume_jax.infra import preemption
  # Only a preemption the processes agreed on exits gracefully; a Ctrl-C of
  # one process of several (130) leaves at once.
  with distributed.failing_fast(graceful_exit_codes=(preemption.EXIT_STATUS,)):
    try:
      experiment.run(config, _WORKDIR.value)
    except errors.USER_ERRORS as e:
      # A bad config, data dir or checkpoint: one paragraph, no traceback.
      raise SystemExit(f"error: {e}") from None
    except preemption.Preempted as e:
      print(f"preempted: {e}", flush=True)
      raise SystemExit(e.exit_status) from None
    except KeyboardInterrupt as e:
      # preemption.Interrupted, or a Ctrl-C before its handler is installed.
      print(f"interrupted: {e if str(e) else preemption.Interrupted()}",
            flush=True)
      raise SystemExit(preemption.INTERRUPTED_STATUS) from None


def _load_config():
  """The config, or one line naming the file that could not be loaded
  (ml_collections defers that error to the first read of the flag)."""
  try:
    config = _CONFIG.value
    config.keys()   # a config that failed to load raises on first use
    return config
  except (OSError, ImportError, SyntaxError) as e:
    last = [l.strip() for l in str(e).splitlines() if l.strip()][-1]
    raise SystemExit(f"error: cannot load the config file given by --config:"
                     f" {last}") from None


def _without_traceback(message: str) -> str:
  """ml_collections embeds the config file's traceback in its flag error
  (e.g. an unknown ``:variant``): keep its first line and the exception."""
  if "Traceback (most recent call last)" not in message:
    return message
  lines = [line.strip() for line in message.splitlines() if line.strip()]
  return f"{lines[0]} {lines[-1]}"


def _parse_flags(argv):
  """absl's parser, with a bad ``--config.x=y`` override as one line of error
  instead of ml_collections' traceback."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    raise SystemExit(f"error: {_without_traceback(str(e))}") from None
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    # ml_collections wraps a KeyError's repr: unescape it for reading.
    detail = str(e).replace("\\n", " ").replace("\\'", "").replace("'", "")
    raise SystemExit(f"error: bad --config override in {argv[1:]}: unknown"
                     f" or invalid key {detail}") from None


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
