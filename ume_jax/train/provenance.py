"""What a training run's trained state depends on, recorded with the run and
checked on every rerun, so results never come from a training the recorded
config does not describe.

A run directory holds ``provenance.json``: the run's *fingerprint* (every
setting that determines its trained state: model, stage budget and
optimiser, run seed, augmentation and training-set missingness, the data's
identity, pre-trained weights, and for runs initialised from other runs the
identity of those runs) and the resolved config it was trained under.
Settings that do not change the trained state (logging cadence, evaluation,
checkpoint cadence, worker processes, where the data lives) are left out.

On a rerun: the same fingerprint resumes; another one is refused naming the
changed keys. A run initialised from another carries that run's identity,
so a retrained upstream run makes every run built on it stale.
"""
import hashlib
import json
import os
from typing import Any, Mapping

import jax

from ume_jax.infra import paths

FILE = "provenance.json"


class ProvenanceError(ValueError):
  """A run directory holds a training made under other settings."""


def _canonical(tree: Any) -> Any:
  return json.loads(json.dumps(tree, sort_keys=True, default=str))


def identity(fingerprint: Mapping) -> str:
  """A short stable name of a fingerprint (sha256 of its canonical JSON)."""
  text = json.dumps(_canonical(fingerprint), sort_keys=True)
  return hashlib.sha256(text.encode()).hexdigest()[:16]


def read(directory: str) -> dict | None:
  """The run's record (``{"fingerprint", "identity", "config"}``) or None."""
  path = paths.join(directory, FILE)
  if not paths.isfile(path):
    return None
  return json.loads(paths.read_text(path))


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
  if isinstance(tree, dict):
    out = {}
    for k, v in tree.items():
      out.update(_flat(v, f"{prefix}{k}."))
    return out
  return {prefix[:-1]: tree}


def flat(tree: Mapping) -> dict[str, Any]:
  """``{"section.key": value}`` of a config or fingerprint, as recorded
  (canonical JSON: tuples are lists)."""
  return _flat(_canonical(tree))


def changed_keys(old: Mapping, new: Mapping) -> dict[str, tuple]:
  """``{key: (recorded, now)}`` for every leaf that differs."""
  a, b = flat(old), flat(new)
  return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b))
          if a.get(k) != b.get(k)}


def check_or_record(directory: str, fingerprint: Mapping, config: Mapping,
                    has_checkpoint: bool) -> None:
  """Refuses a run directory whose checkpoints were trained under another
  fingerprint; records this one where no training was saved yet."""
  record = read(directory)
  if has_checkpoint:
    if record is None:
      raise ProvenanceError(
          f"{directory} holds checkpoints but no {FILE}: they were trained"
          " by a version of ume_jax that did not record its settings, so"
          " whether they match this config is unknown. Use a fresh --workdir,"
          f" or delete {directory} to retrain it.")
    diff = changed_keys(record["fingerprint"], fingerprint)
    if diff:
      shown = "; ".join(f"{k}: trained with {a!r}, now {b!r}"
                        for k, (a, b) in list(diff.items())[:8])
      more = f" (and {len(diff) - 8} more)" if len(diff) > 8 else ""
      raise ProvenanceError(
          f"The run in {directory} was trained under other settings than"
          f" this config gives it: {shown}{more}. Its results would not be"
          " this config's. Use a fresh --workdir, or delete that run"
          " directory (and the runs built on it) to retrain.")
    return
  if jax.process_index() == 0:
    paths.write_text(paths.join(directory, FILE), json.dumps(
        {"identity": identity(fingerprint),
         "fingerprint": _canonical(fingerprint),
         "config": _canonical(config)}, indent=1))


def check_frozen_prefix(directory: str, record: Mapping) -> None:
  """Adds the frozen-prefix cache entries a run trains from to its record
  (``train/frozen_prefix.py``); refuses entries other than those it was
  trained from, whose features came from other weights or data."""
  saved = read(directory)
  if saved is None:   # a run without a record (tests): nothing to add to
    return
  record = _canonical(record)
  before = saved.get("frozen_prefix")
  if before is not None and before != record:
    raise ProvenanceError(
        f"The run in {directory} was trained from cached frozen encoder"
        f" prefixes {before!r}, and this config gives it {record!r}: the"
        " frozen layers' weights or the data differ, so its results would"
        " not be this config's. Use a fresh --workdir, or delete that run"
        " directory to retrain.")
  if before is None and jax.process_index() == 0:
    paths.write_text(paths.join(directory, FILE),
                     json.dumps({**saved, "frozen_prefix": record}, indent=1))


def code_version() -> dict:
  """The package version, and the git commit when run from a checkout
  (``dirty`` when it has uncommitted changes)."""
  import importlib.metadata  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  try:
    version = importlib.metadata.version("ume_jax")
  except importlib.metadata.PackageNotFoundError:
    version = None
  out = {"version": version, "commit": None}
  here = os.path.dirname(os.path.abspath(__file__))
  try:
    git = lambda *a: subprocess.run(
        ["git", "-C", here, *a], capture_output=True, text=True, timeout=10,
        check=True).stdout.strip()
    out["commit"] = git("rev-parse", "HEAD")
    out["dirty"] = bool(git("status", "--porcelain", "--untracked-files=no"))
  except (OSError, subprocess.SubprocessError):
    pass
  return out
