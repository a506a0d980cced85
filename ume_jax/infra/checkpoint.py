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
"""
import json
import os
import time
from typing import Any, Callable

from absl import logging
import jax
import numpy as np
from jax.experimental import multihost_utils
import orbax.checkpoint as ocp

from ume_jax.config import rules


# The keys of the ``checkpoint`` section.
CONFIG_KEYS = {
    "max_to_keep": rules.integer(1),
    "every_steps": rules.integer(0),    # 0: at the end of a run only
    "asynchronous": rules.boolean,
}


class CheckpointError(ValueError):
  """A checkpoint is missing, or belongs to another model."""


def _canonical(fingerprint: dict) -> dict:
  return json.loads(json.dumps(fingerprint, sort_keys=True, default=str))


class Checkpointer:
  """Save/resume for one training run in ``directory``."""

  def __init__(self, directory: str, fingerprint: dict, *, max_to_keep: int = 2,
               asynchronous: bool = True):
    self.directory = os.path.abspath(directory)
    self.fingerprint = _canonical(fingerprint)
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True,
            enable_async_checkpointing=asynchronous),
        item_names=("state", "data_iter", "model"),
    )

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state: Any, data_iter_state: dict | None):
    # Orbax writes JSON items from process 0 only: every process's input
    # position is gathered into that one file, each restores its own.
    iter_states = _gather_json(data_iter_state or {})
    self._manager.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            data_iter=ocp.args.JsonSave({"per_process": iter_states}),
            model=ocp.args.JsonSave(self.fingerprint)),
        force=True)

  def restore_latest(self, abstract_state: Any
                     ) -> tuple[int, Any, dict] | None:
    """(step, state, iterator state) of the newest readable step, or None.

    Unreadable steps are moved aside to ``<directory>/corrupt/`` with a
    warning; a checkpoint of another model is an error, not a fallback.
    """
    def read(step):
      return self.restore(step, abstract_state)

    found = _newest_readable(self._manager, self.directory, read,
                             on_unreadable=self._move_aside)
    if found is None:
      return None
    step, (state, iter_state) = found
    return step, state, iter_state

  def _move_aside(self, step: int):
    """Renames step ``step`` into ``corrupt/`` (process 0; all wait)."""
    if jax.process_index() == 0:
      target = os.path.join(self.directory, "corrupt",
                            f"{step}.{time.strftime('%Y%m%d-%H%M%S')}")
      os.makedirs(os.path.dirname(target), exist_ok=True)
      os.rename(os.path.join(self.directory, str(step)), target)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices(f"ume_jax:aside:{step}")
    self._manager.reload()

  def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
    """Restores ``state`` onto the shardings in ``abstract_state``."""
    check_fingerprint(self.directory, self.fingerprint, self._manager, step)
    restored = self._manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state),
            data_iter=ocp.args.JsonRestore()))
    per_process = restored["data_iter"].get("per_process", [])
    if len(per_process) != jax.process_count():
      raise CheckpointError(
          f"The checkpoint in {self.directory} (step {step}) was written by"
          f" {len(per_process)} processes and this run has"
          f" {jax.process_count()}: each process resumes its own input"
          " position. Resume with the same number of processes (devices"
          " per process may differ), or evaluate it with"
          " config.stage=eval, which reads parameters only.")
    return restored["state"], per_process[jax.process_index()]

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
      logging.warning(
          "Checkpoint step %d in %s is unreadable (%s: %s); %s", step,
          directory, type(e).__name__, str(e).splitlines()[0][:300],
          "moving it to corrupt/ and trying the previous step."
          if on_unreadable else "trying the previous step.")
      if on_unreadable is not None:
        on_unreadable(step)
  return None


def check_fingerprint(directory: str, expected: dict,
                      manager: ocp.CheckpointManager, step: int):
  found = manager.restore(
      step, args=ocp.args.Composite(model=ocp.args.JsonRestore()))["model"]
  expected = _canonical(expected)
  if found != expected:
    diff = sorted(k for k in set(found) | set(expected)
                  if found.get(k) != expected.get(k))
    raise CheckpointError(
        f"The checkpoint in {directory} (step {step}) belongs to another model:"
        f" its {diff} differ from this run's config ({ {k: found.get(k) for k in diff} }"
        f" stored vs { {k: expected.get(k) for k in diff} } now). Use a fresh"
        " --workdir, or delete that directory to retrain.")


def _missing_error(directory: str) -> CheckpointError:
  return CheckpointError(
      f"No checkpoint directory {directory}: train that stage first"
      " (config.stage='pretrain' or 'finetune'), or point"
      " config.eval.checkpoint_dir / config.finetune.pretrained_dir at the"
      " workdir that holds it.")


def saved_steps(directory: str) -> list[int]:
  """The finished steps in ``directory``, read from the file system only
  (Orbax names finished steps by number; temporary ones differ)."""
  if not os.path.isdir(directory):
    return []
  return sorted(int(n) for n in os.listdir(directory) if n.isdigit())


def require_saved_steps(directories) -> None:
  """Raises, before any work, when a directory a stage reads holds no saved
  step."""
  for directory in directories:
    if not saved_steps(directory):
      raise _missing_error(os.path.abspath(directory))


def restore_params(directory: str, fingerprint: dict, abstract_params: Any
                   ) -> tuple[Any, int]:
  """Latest ``params`` of the checkpoint in ``directory`` (for eval and
  fine-tuning), placed on the shardings carried by ``abstract_params``."""
  directory = os.path.abspath(directory)
  if not os.path.isdir(directory):
    raise _missing_error(directory)
  manager = ocp.CheckpointManager(
      # create=False rather than read_only=True: the same effect here, without
      # Orbax's three warnings per directory about what read_only implies.
      directory, options=ocp.CheckpointManagerOptions(
          create=False, enable_async_checkpointing=False),
      item_names=("state", "data_iter", "model"))
  def read(step):
    check_fingerprint(directory, fingerprint, manager, step)
    return manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
            item={"params": abstract_params},
            restore_args=jax.tree.map(
                lambda x: ocp.ArrayRestoreArgs(sharding=x.sharding),
                {"params": abstract_params}),
            partial_restore=True)))["state"]["params"]

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
