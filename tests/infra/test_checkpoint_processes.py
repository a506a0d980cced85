"""A checkpoint written by another number of processes: the trainer's
restore hands the saved input positions of every process to the input
pipeline to remap (``TrainIterator.state_from_processes``), and without a
way to remap, or where the pipeline refuses, it stops with a
CheckpointError -- never by moving the step aside as if it were damaged.

The saving processes are simulated: ``_gather_json`` (what every process
contributes to the data_iter item) returns two positions in one process.
The real thing, 2 processes resumed on 1, is in tests/jobs/test_multiprocess.py.
"""
import os

import jax
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from ume_jax.data.errors import DataError
from ume_jax.infra import checkpoint

FINGERPRINT = {"model": "tiny"}


def _state(step):
  mesh = Mesh(np.array(jax.devices()).reshape(4, 2), ("data", "fsdp"))
  return {"step": jax.device_put(np.int32(step), NamedSharding(mesh, P())),
          "w": jax.device_put(np.arange(64, dtype=np.float32).reshape(8, 8)
                              * step, NamedSharding(mesh, P("data", "fsdp")))}


def _abstract(tree):
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(
      x.shape, x.dtype, sharding=x.sharding), tree)


@pytest.fixture
def two_process_step(tmp_path, monkeypatch):
  """A run directory whose step 3 holds the positions of 2 processes."""
  directory = str(tmp_path / "run")
  positions = [{"batches": 3, "process_index": p, "process_count": 2}
               for p in range(2)]
  monkeypatch.setattr(checkpoint, "_gather_json", lambda value: positions)
  ckpt = checkpoint.Checkpointer(directory, FINGERPRINT, asynchronous=False)
  ckpt.save(3, _state(3), positions[0])
  ckpt.close()
  return directory, positions


def _restore(directory, remap=None):
  ckpt = checkpoint.Checkpointer(directory, FINGERPRINT)
  try:
    return ckpt.restore_latest(_abstract(_state(0)), remap_iter_state=remap)
  finally:
    ckpt.close()


def test_the_saved_positions_are_remapped(two_process_step):
  directory, positions = two_process_step
  seen = []
  def remap(saved):
    seen.append(saved)
    return {"batches": saved[0]["batches"], "process_index": 0,
            "process_count": 1}
  step, state, iter_state = _restore(directory, remap)
  assert step == 3 and seen == [positions]
  assert iter_state == {"batches": 3, "process_index": 0, "process_count": 1}
  np.testing.assert_array_equal(np.asarray(state["w"]),
                                np.asarray(_state(3)["w"]))


def test_without_a_remap_another_process_count_is_refused(two_process_step):
  directory, _ = two_process_step
  with pytest.raises(checkpoint.CheckpointError,
                     match=r"step 3\) holds the input position of 2"
                     r" processes in its data_iter item \(key per_process\)"
                     r" and this run has 1"):
    _restore(directory)
  assert os.path.isdir(os.path.join(directory, "3"))


def test_a_refused_remap_is_an_error_not_a_damaged_step(two_process_step):
  directory, _ = two_process_step
  def refuse(saved):
    raise DataError("the processes disagree")
  with pytest.raises(checkpoint.CheckpointError,
                     match=r"written by 2 processes and this run has 1; its"
                     " input position does not remap: the processes"
                     " disagree"):
    _restore(directory, refuse)
  assert os.path.isdir(os.path.join(directory, "3"))   # not moved aside
  assert not os.path.exists(os.path.join(directory, "corrupt"))
