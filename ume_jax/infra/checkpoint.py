"""Where Orbax gets called: the only module that imports orbax.

A checkpoint directory holds numbered steps, each with three items:
``state`` (train state pytree), ``data_iter`` (the input iterator's JSON
state) and ``model`` (a JSON fingerprint of the model config). The fingerprint
lets us refuse, with a clear message, to resume or evaluate a checkpoint that
belongs to another model. Saves are asynchronous; Orbax writes into a
temporary directory and renames it when complete, so a crash never leaves a
half-written step behind as the latest.

A finished step can still be unreadable later (a truncated file, a disk
error): restoring then warns, moves that step aside into
``<directory>/corrupt/`` (kept for inspection, never deleted) and falls back
to the newest step that reads.

A damaged file can also still *read*: a flipped byte in an OCDBT data file
restores other numbers without any error. So every step carries a fourth
item, ``checksum``: per array of the state two 32-bit position-weighted sums
of its bits (computed on the devices from the global values, so the same on
any mesh and on every process), and a SHA-256 of each JSON item. Restoring
recomputes them from what was read, on every process, and a mismatch is an
unreadable step like any other (warning, ``corrupt/``, previous step). A
step whose checksum item exists but cannot be read is unreadable too. A
step with no checksum item at all was written before checksums existed (a
damaged file does not delete a directory): it restores unverified, with a
warning, so an upgrade never sends a user's finished runs to ``corrupt/``.
"""
import hashlib
import json
import time
from typing import Any, Callable

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
import orbax.checkpoint as ocp

from ume_jax.config import rules
from ume_jax.infra import paths


# The keys of the ``checkpoint`` section.
CONFIG_KEYS = {
    "max_to_keep": rules.integer(1),
    "every_steps": rules.integer(0),    # 0: at the end of a run only
    "asynchronous": rules.boolean,
}


class CheckpointError(ValueError):
  """A checkpoint is missing, or belongs to another model."""


class ChecksumMismatch(Exception):
  """What a step restored differs from what was saved (a damaged file)."""


ITEMS = ("state", "data_iter", "model", "checksum")
COMMIT_FILE = "commit_success.txt"   # Orbax's, on object storage
CHECKSUM_VERSION = 1
# Two odd multipliers/offsets: a changed element changes both sums.
_HASH_CONSTANTS = ((0x9E3779B1, 0x7F4A7C15), (0x85EBCA77, 0xC2B2AE3D))


def _leaf_sums(x):
  """Two uint32 sums over the bits of ``x``, each element weighted by an
  odd function of its position: any change of one element changes both."""
  if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    x = jax.random.key_data(x)
  if x.dtype == jnp.bool_:
    x = x.astype(jnp.uint8)
  width = jnp.dtype(x.dtype).itemsize
  unsigned = {1: jnp.uint8, 2: jnp.uint16}.get(width, jnp.uint32)
  bits = jax.lax.bitcast_convert_type(x, unsigned).astype(jnp.uint32)
  index = jnp.zeros(bits.shape, jnp.uint32)
  stride = 1
  for d in reversed(range(bits.ndim)):   # row-major position, no reshape
    index = index + jax.lax.broadcasted_iota(jnp.uint32, bits.shape, d
                                             ) * jnp.uint32(stride % 2**32)
    stride *= bits.shape[d]
  return jnp.stack([
      jnp.sum(bits * ((index * jnp.uint32(m) + jnp.uint32(a))
                      | jnp.uint32(1)), dtype=jnp.uint32)
      for m, a in _HASH_CONSTANTS])


_tree_sums = jax.jit(lambda tree: jax.tree.map(_leaf_sums, tree))


def _path(key_path) -> str:
  parts = []
  for k in key_path:
    for attr in ("name", "key", "idx"):
      if hasattr(k, attr):
        parts.append(str(getattr(k, attr)))
        break
    else:
      parts.append(str(k))
  return "/".join(parts)


def state_checksums(tree: Any) -> dict[str, list]:
  """{"params/encoder/.../kernel": [dtype, shape, sum0, sum1], ...}."""
  sums = _tree_sums(tree)
  out = {}
  for (key_path, leaf), (_, s) in zip(
      jax.tree_util.tree_flatten_with_path(tree)[0],
      jax.tree_util.tree_flatten_with_path(sums)[0]):
    # Replicated: every process holds the whole (2,) result.
    value = np.asarray(s.addressable_data(0))
    out[_path(key_path)] = [str(leaf.dtype), list(leaf.shape),
                            int(value[0]), int(value[1])]
  return out


def json_checksum(value: Any) -> str:
  return hashlib.sha256(json.dumps(value, sort_keys=True).encode("utf-8")
                        ).hexdigest()


def _verify_json(directory: str, step: int, checksums: dict | None,
                 name: str, value: Any) -> None:
  if checksums is not None and checksums.get(name) != json_checksum(value):
    raise ChecksumMismatch(
        f"its {name} item differs from the checksum saved with it"
        f" (a damaged file in {paths.join(directory, str(step), name)})")


def _verify_state(directory: str, step: int, checksums: dict | None,
                  tree: Any, prefix: str = "") -> None:
  if checksums is None:   # written before checksums (_read_checksums)
    return
  saved = checksums.get("state", {})
  got = state_checksums(tree)
  for path, value in got.items():
    path = prefix + path
    if saved.get(path) != value:
      raise ChecksumMismatch(
          f"the array {path!r} it restored differs from the checksum saved"
          f" with it ({'not in it' if path not in saved else 'other values'};"
          " a damaged file in"
          f" {paths.join(directory, str(step), 'state')})")
  if not prefix and set(saved) != set(got):
    raise ChecksumMismatch(
        "its state holds other arrays than its checksum lists"
        f" ({sorted(set(saved) ^ set(got))[:3]})")


def _read_checksums(manager, directory: str, step: int) -> dict | None:
  """The step's checksums; None for a step written before they existed."""
  if not paths.isdir(paths.join(directory, str(step), "checksum")):
    logging.warning(
        "Checkpoint step %d in %s has no checksum (written by a version of"
        " ume_jax before checksums): restoring it unverified.", step,
        directory)
    return None
  try:
    found = manager.restore(step, args=ocp.args.Composite(
        checksum=ocp.args.JsonRestore()))["checksum"]
  except Exception as e:  # pylint: disable=broad-except
    raise ChecksumMismatch(
        f"its checksum item cannot be read ({describe_error(e)}): it is lost"
        " or damaged, or the step was written before checksums existed")
  if not isinstance(found, dict) or found.get(
      "version") != CHECKSUM_VERSION:
    raise ChecksumMismatch("its checksum item is damaged (unknown version)")
  return found


def describe_error(e: BaseException, limit: int = 400) -> str:
  """``e`` in words: its type and first line without the Python/pybind
  reprs some libraries put there (Orbax's read errors end in TensorStore's
  ``<bound method ...>``), followed by its causes'."""
  parts, seen = [], set()
  while e is not None and id(e) not in seen:
    seen.add(id(e))
    lines = [l.strip() for l in str(e).splitlines() if l.strip()]
    text = lines[0] if lines else ""
    for marker in (" See full TensorStore details", "<bound method",
                   " [tensorstore_spec"):
      text = text.split(marker)[0]
    text = text.strip().rstrip(".:")
    if text:
      parts.append(f"{type(e).__name__}: {text}")
    e = e.__cause__ or (None if e.__suppress_context__ else e.__context__)
  return ("; caused by ".join(parts) or "no message")[:limit]


def _canonical(fingerprint: dict) -> dict:
  return json.loads(json.dumps(fingerprint, sort_keys=True, default=str))


class Checkpointer:
  """Save/resume for one training run in ``directory``."""

  def __init__(self, directory: str, fingerprint: dict, *, max_to_keep: int = 2,
               asynchronous: bool = True):
    self.directory = paths.name(directory)
    self.fingerprint = _canonical(fingerprint)
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True,
            enable_async_checkpointing=asynchronous),
        item_names=ITEMS,
    )

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state: Any, data_iter_state: dict | None):
    # Orbax writes JSON items from process 0 only: every process's input
    # position is gathered into that one file, each restores its own (or,
    # on another process count, a remapped one: ``restore``).
    iter_states = {"per_process": _gather_json(data_iter_state or {})}
    checksums = {"version": CHECKSUM_VERSION,
                 "state": state_checksums(state),
                 "data_iter": json_checksum(iter_states),
                 "model": json_checksum(self.fingerprint)}
    self._manager.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            data_iter=ocp.args.JsonSave(iter_states),
            model=ocp.args.JsonSave(self.fingerprint),
            checksum=ocp.args.JsonSave(checksums)),
        force=True)

  def restore_latest(self, abstract_state: Any,
                     remap_iter_state: Callable[[list[dict]], dict] | None
                     = None) -> tuple[int, Any, dict] | None:
    """(step, state, iterator state) of the newest readable step, or None.

    Unreadable steps are moved aside to ``<directory>/corrupt/`` with a
    warning; a checkpoint of another model is an error, not a fallback.
    ``remap_iter_state``: see ``restore``.
    """
    def read(step):
      return self.restore(step, abstract_state, remap_iter_state)

    found = _newest_readable(self._manager, self.directory, read,
                             on_unreadable=self._move_aside)
    if found is None:
      return None
    step, (state, iter_state) = found
    return step, state, iter_state

  def _move_aside(self, step: int):
    """Renames step ``step`` into ``corrupt/`` (process 0; all wait)."""
    if jax.process_index() == 0:
      corrupt = paths.join(self.directory, "corrupt")
      paths.makedirs(corrupt)
      paths.rename(paths.join(self.directory, str(step)), paths.join(
          corrupt, f"{step}.{time.strftime('%Y%m%d-%H%M%S')}"))
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices(f"ume_jax:aside:{step}")
    self._manager.reload()

  def restore(self, step: int, abstract_state: Any,
              remap_iter_state: Callable[[list[dict]], dict] | None = None
              ) -> tuple[Any, dict]:
    """Restores ``state`` onto the shardings in ``abstract_state``.

    The iterator state returned is this process's own when the step was
    written by as many processes as this run has. Otherwise it is
    ``remap_iter_state(states of every saving process, in order)`` (the
    input pipeline's ``TrainIterator.state_from_processes``); without one,
    a CheckpointError.
    """
    checksums = check_fingerprint(self.directory, self.fingerprint,
                                  self._manager, step)
    restored = self._manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state),
            data_iter=ocp.args.JsonRestore()))
    _verify_json(self.directory, step, checksums, "data_iter",
                 restored["data_iter"])
    _verify_state(self.directory, step, checksums, restored["state"])
    per_process = restored["data_iter"].get("per_process", [])
    if len(per_process) == jax.process_count():
      return restored["state"], per_process[jax.process_index()]
    if remap_iter_state is None or not per_process:
      raise CheckpointError(
          f"The checkpoint in {self.directory} (step {step}) holds the input"
          f" position of {len(per_process)} processes in its data_iter item"
          f" (key per_process) and this run has {jax.process_count()}:"
          " expected one per process"
          + ("" if per_process else " (the item holds none)")
          + ", or a way to remap them. Resume with the same number of"
          " processes, or evaluate it with config.stage=eval, which reads"
          " parameters only.")
    try:
      return restored["state"], remap_iter_state(per_process)
    except ValueError as e:   # DataError: this run cannot continue there
      raise CheckpointError(
          f"The checkpoint in {self.directory} (step {step}) was written by"
          f" {len(per_process)} processes and this run has"
          f" {jax.process_count()}; its input position does not remap: {e}"
          ) from e

  def wait(self):
    self._manager.wait_until_finished()

  def close(self):
    self._manager.wait_until_finished()
    self._manager.close()


def _gather_json(value: dict) -> list[dict]:
  """``value`` of every process, in process order (a list on each)."""
  if jax.process_count() == 1:
    return [value]
  data = np.frombuffer(json.dumps(value).encode("utf-8"), np.uint8)
  lengths = multihost_utils.process_allgather(np.int32(data.size))
  padded = np.zeros(int(np.max(lengths)), np.uint8)
  padded[:data.size] = data
  everyone = multihost_utils.process_allgather(padded)
  return [json.loads(bytes(row[:n]).decode("utf-8"))
          for row, n in zip(np.asarray(everyone), np.asarray(lengths))]


def _newest_readable(manager: ocp.CheckpointManager, directory: str,
                     read: Callable[[int], Any],
                     on_unreadable: Callable[[int], None] | None = None
                     ) -> tuple[int, Any] | None:
  """(step, read(step)) for the newest step that reads, or None."""
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      return step, read(step)
    except CheckpointError:
      raise
    except Exception as e:  # pylint: disable=broad-except
      # Anything else means the files of this step are damaged.
      what = (str(e) if isinstance(e, ChecksumMismatch)
              else describe_error(e))
      logging.warning(
          "Checkpoint step %d in %s is unreadable (%s); %s", step,
          directory, what,
          "moving it to corrupt/ and trying the previous step."
          if on_unreadable else "trying the previous step.")
      if on_unreadable is not None:
        on_unreadable(step)
  return None


def check_fingerprint(directory: str, expected: dict,
                      manager: ocp.CheckpointManager, step: int) -> dict:
  """Raises unless step ``step`` is of the model ``expected``; returns the
  step's checksums (its model item is checked against them first, so a
  damaged file is not mistaken for another model)."""
  checksums = _read_checksums(manager, directory, step)
  found = manager.restore(
      step, args=ocp.args.Composite(model=ocp.args.JsonRestore()))["model"]
  _verify_json(directory, step, checksums, "model", found)
  expected = _canonical(expected)
  if found != expected:
    diff = sorted(k for k in set(found) | set(expected)
                  if found.get(k) != expected.get(k))
    raise CheckpointError(
        f"The checkpoint in {directory} (step {step}) belongs to another model:"
        f" its {diff} differ from this run's config ({ {k: found.get(k) for k in diff} }"
        f" stored vs { {k: expected.get(k) for k in diff} } now). Use a fresh"
        " --workdir, or delete that directory to retrain.")
  return checksums


def _missing_error(directory: str) -> CheckpointError:
  return CheckpointError(
      f"No checkpoint directory {directory}: train that stage first"
      " (config.stage='pretrain' or 'finetune'), or point"
      " config.eval.checkpoint_dir / config.finetune.pretrained_dir at the"
      " workdir that holds it.")


def saved_steps(directory: str) -> list[int]:
  """The finished steps in ``directory``, read from the file system only
  (Orbax names finished steps by number, temporary ones otherwise; on
  object storage, where it cannot rename, it writes the step under its
  number and marks it finished with a commit file)."""
  steps = [n for n in paths.listdir(directory) if n.isdigit()]
  if paths.is_remote(directory):
    steps = [n for n in steps
             if paths.isfile(paths.join(directory, n, COMMIT_FILE))]
  return sorted(int(n) for n in steps)


def require_saved_steps(directories) -> None:
  """Raises, before any work, when a directory a stage reads holds no saved
  step."""
  for directory in directories:
    if not saved_steps(directory):
      raise _missing_error(paths.name(directory))


def restore_params(directory: str, fingerprint: dict, abstract_params: Any
                   ) -> tuple[Any, int]:
  """Latest ``params`` of the checkpoint in ``directory`` (for eval and
  fine-tuning), placed on the shardings carried by ``abstract_params``."""
  directory = paths.name(directory)
  if not paths.isdir(directory):
    raise _missing_error(directory)
  manager = ocp.CheckpointManager(
      # create=False rather than read_only=True: the same effect here, without
      # Orbax's three warnings per directory about what read_only implies.
      directory, options=ocp.CheckpointManagerOptions(
          create=False, enable_async_checkpointing=False),
      item_names=ITEMS)
  def read(step):
    checksums = check_fingerprint(directory, fingerprint, manager, step)
    params = manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
            item={"params": abstract_params},
            restore_args=jax.tree.map(
                lambda x: ocp.ArrayRestoreArgs(sharding=x.sharding),
                {"params": abstract_params}),
            partial_restore=True)))["state"]["params"]
    _verify_state(directory, step, checksums, params, prefix="params/")
    return params

  try:
    found = _newest_readable(manager, directory, read)
    if found is None:
      raise CheckpointError(
          f"{directory} holds no readable checkpoint step; train that stage"
          " first (an interrupted run leaves only temporary directories;"
          " unreadable steps were reported above).")
    step, params = found
    return params, step
  finally:
    manager.close()
