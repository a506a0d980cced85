"""Where Orbax gets called: the only module that imports orbax.

A checkpoint directory holds numbered steps, each with three items:
``state`` (train state pytree), ``data_iter`` (the input iterator's JSON
state) and ``model`` (a JSON fingerprint of the model config). The fingerprint
lets us refuse, with a clear message, to resume or evaluate a checkpoint that
belongs to another model. Saves are asynchronous; Orbax writes into a
temporary directory and renames it when complete, so a crash never leaves a
half-written step behind as the latest.
"""
import json
import os
from typing import Any

import jax
import orbax.checkpoint as ocp


class CheckpointError(ValueError):
  """A checkpoint is missing, or belongs to another model."""


def abstract_like(tree: Any, shardings: Any) -> Any:
  """ShapeDtypeStructs carrying the *current* shardings, for restore."""
  return jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
      tree, shardings)


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
    self._manager.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            data_iter=ocp.args.JsonSave(data_iter_state or {}),
            model=ocp.args.JsonSave(self.fingerprint)),
        force=True)

  def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
    """Restores ``state`` onto the shardings in ``abstract_state``."""
    check_fingerprint(self.directory, self.fingerprint, self._manager, step)
    restored = self._manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state),
            data_iter=ocp.args.JsonRestore()))
    return restored["state"], restored["data_iter"]

  def wait(self):
    self._manager.wait_until_finished()

  def close(self):
    self._manager.wait_until_finished()
    self._manager.close()


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


def restore_params(directory: str, fingerprint: dict, abstract_params: Any
                   ) -> tuple[Any, int]:
  """Latest ``params`` of the checkpoint in ``directory`` (for eval and
  fine-tuning), placed on the shardings carried by ``abstract_params``."""
  directory = os.path.abspath(directory)
  if not os.path.isdir(directory):
    raise CheckpointError(
        f"No checkpoint directory {directory}: train that stage first"
        " (config.stage='pretrain' or 'finetune'), or point"
        " config.eval.checkpoint_dir / config.finetune.pretrained_dir at the"
        " workdir that holds it.")
  manager = ocp.CheckpointManager(
      # create=False rather than read_only=True: the same effect here, without
      # Orbax's three warnings per directory about what read_only implies.
      directory, options=ocp.CheckpointManagerOptions(
          create=False, enable_async_checkpointing=False),
      item_names=("state", "data_iter", "model"))
  try:
    step = manager.latest_step()
    if step is None:
      raise CheckpointError(
          f"{directory} holds no finished checkpoint step; train that stage"
          " first (an interrupted run leaves only temporary directories).")
    check_fingerprint(directory, fingerprint, manager, step)
    restored = manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
            item={"params": abstract_params},
            restore_args=jax.tree.map(
                lambda x: ocp.ArrayRestoreArgs(sharding=x.sharding),
                {"params": abstract_params}),
            partial_restore=True)))
    return restored["state"]["params"], step
  finally:
    manager.close()
