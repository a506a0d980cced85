"""A config's resolved values, the config a finished run was trained
with, or what differs between the two.

    python -m ume_jax.config.show --config=configs/default.py:small \\
        [--config.pretrain.num_epochs=3]
    python -m ume_jax.config.show --workdir=workdirs/default
    python -m ume_jax.config.show --config=configs/default.py \\
        --workdir=workdirs/default          # the difference

One ``section.key = value`` line per setting (values as JSON), sorted. A
config file is shown as a run would record it: overrides applied and the
pre-trained encoders' architectures filled in from their snapshots. A
workdir's config is its training runs' record (``provenance.json``).
"""
import json

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "A config file (with :variants and --config.x=y"
    " overrides).", lock_config=False)
_WORKDIR = flags.DEFINE_string("workdir", None, "A run's workdir.")


def lines(config) -> list[str]:
  """``section.key = value`` per leaf of ``config``, sorted."""
  from ume_jax.train import provenance  # pylint: disable=g-import-not-at-top
  return [f"{k} = {json.dumps(v)}"
          for k, v in sorted(provenance.flat(_plain(config)).items())]


def difference(recorded, given) -> list[str]:
  """One line per setting where ``given`` differs from ``recorded``."""
  from ume_jax.train import provenance  # pylint: disable=g-import-not-at-top
  return [f"{k}: run {json.dumps(a)}, config {json.dumps(b)}"
          for k, (a, b) in provenance.changed_keys(
              _plain(recorded), _plain(given)).items()]


def _plain(config):
  """A ConfigDict as nested dicts (what a run records)."""
  return config.to_dict() if hasattr(config, "to_dict") else config


def _file_config():
  from ume_jax import errors  # pylint: disable=g-import-not-at-top
  from ume_jax.weights import graft  # pylint: disable=g-import-not-at-top
  try:
    return graft.with_architectures(_CONFIG.value)
  except errors.USER_ERRORS as e:
    raise SystemExit(f"error: {e}") from None


def _run_config():
  from ume_jax import trained_run  # pylint: disable=g-import-not-at-top
  try:
    return trained_run.recorded_config(_WORKDIR.value)
  except trained_run.RunError as e:
    raise SystemExit(f"error: {e}") from None


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if _CONFIG.value is None and _WORKDIR.value is None:
    raise app.UsageError("give --config, --workdir or both")
  if _WORKDIR.value is None:
    out = lines(_file_config())
  elif _CONFIG.value is None:
    out = lines(_run_config())
  else:
    out = difference(_run_config(), _file_config()) or [
        "no differences: the config gives what the run was trained with"]
  print("\n".join(out))


if __name__ == "__main__":
  app.run(main)
