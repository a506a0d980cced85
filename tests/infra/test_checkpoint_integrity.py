"""Checkpoint integrity: every saved step carries a content checksum, and a
damaged file of any kind restores the previous good step or stops with a
clear error, never with other numbers.

The fuzzing test flips bytes in, and truncates, each file of the latest of
two steps (state data, OCDBT manifests, array metadata, JSON items, Orbax's
own metadata, the checksum itself) and restores through both readers: the
trainer's ``restore_latest`` and evaluation's ``restore_params``.
"""
import json
import os
import shutil

from absl import logging as absl_logging
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from ume_jax.infra import checkpoint

FINGERPRINT = {"model": "tiny", "width": 8}


def _mesh():
  return Mesh(np.array(jax.devices()).reshape(4, 2), ("data", "fsdp"))


def _state(step: int):
  """A train-state-like tree: sharded, replicated, float32, bfloat16, int."""
  mesh = _mesh()
  sharded, replicated = (NamedSharding(mesh, P("data", "fsdp")),
                         NamedSharding(mesh, P()))
  rng = np.random.default_rng(step)
  params = {"dense": {"kernel": rng.normal(size=(128, 64)).astype(np.float32),
                      "bias": rng.normal(size=(64,)).astype(np.float32)},
            "head": rng.normal(size=(64, 4)).astype(jnp.bfloat16)}
  put = lambda x: jax.device_put(x, sharded if x.shape == (128, 64)
                                 else replicated)
  return {"step": jax.device_put(np.int32(step), replicated),
          "params": jax.tree.map(put, params),
          "opt_state": {"mu": jax.tree.map(lambda x: put(x * 0.5), params),
                        "count": jax.device_put(np.int32(step), replicated)}}


def _abstract(tree):
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(
      x.shape, x.dtype, sharding=x.sharding), tree)


def _numpy(tree):
  return jax.tree.map(lambda x: np.asarray(x, np.float32), tree)


def _same(a, b) -> bool:
  return all(np.array_equal(x, y, equal_nan=True) for x, y in zip(
      jax.tree.leaves(_numpy(a)), jax.tree.leaves(_numpy(b))))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
  """A run directory with steps 1 and 2, saved asynchronously as training
  saves them."""
  directory = str(tmp_path_factory.mktemp("ckpt") / "run")
  ckpt = checkpoint.Checkpointer(directory, FINGERPRINT, max_to_keep=3)
  for step in (1, 2):
    ckpt.save(step, _state(step), {"position": step * 100})
  ckpt.close()
  return directory


def test_every_step_carries_a_checksum_of_its_content(pristine):
  with open(os.path.join(pristine, "2", "checksum", "metadata")) as f:
    saved = json.load(f)
  assert saved["version"] == checkpoint.CHECKSUM_VERSION
  assert set(saved["state"]) == {
      "step", "params/dense/kernel", "params/dense/bias", "params/head",
      "opt_state/mu/dense/kernel", "opt_state/mu/dense/bias",
      "opt_state/mu/head", "opt_state/count"}
  # The sums are of the global values: the same on any mesh.
  one_device = jax.tree.map(lambda x: jax.device_put(
      np.asarray(x), jax.devices()[0]), _state(2))
  assert checkpoint.state_checksums(one_device) == saved["state"]
  # One changed bit of one element changes both sums.
  state = _state(2)
  kernel = np.asarray(state["params"]["dense"]["kernel"]).copy()
  kernel.view(np.uint32)[3, 5] ^= 1 << 7
  state["params"]["dense"]["kernel"] = jnp.asarray(kernel)
  changed = checkpoint.state_checksums(state)["params/dense/kernel"]
  original = saved["state"]["params/dense/kernel"]
  assert changed[:2] == original[:2]   # dtype and shape
  assert changed[2] != original[2] and changed[3] != original[3]


def _mutations(size: int):
  """(name, function(bytearray) -> bytearray) for a file of ``size`` bytes."""
  rng = np.random.default_rng(size)
  positions = sorted({0, size // 2, size - 1,
                      int(rng.integers(0, max(size, 1)))})
  out = []
  for p in positions if size else []:
    def flip(data, p=p):
      data[p] ^= 0x5A   # flips 4 bits of one byte
      return data
    out.append((f"flip@{p}", flip))
  out.append(("truncate/2", lambda data: data[:len(data) // 2]))
  out.append(("empty", lambda data: bytearray()))
  return out


def _files(step_dir):
  for root, _, names in os.walk(step_dir):
    for name in sorted(names):
      yield os.path.relpath(os.path.join(root, name), step_dir)


def _restore(reader, directory):
  """(step, params, iterator state or None) through one of the readers."""
  abstract = _abstract(_state(0))
  if reader == "restore_latest":
    ckpt = checkpoint.Checkpointer(directory, FINGERPRINT, max_to_keep=3)
    try:
      found = ckpt.restore_latest(abstract)
    finally:
      ckpt.close()
    if found is None:
      return None
    step, state, iter_state = found
    return step, state, iter_state
  params, step = checkpoint.restore_params(directory, FINGERPRINT,
                                           abstract["params"])
  return step, {"params": params}, None


def _want(step):
  state = _state(step)
  return state, {"position": step * 100}


@pytest.mark.parametrize("reader", ["restore_latest", "restore_params"])
def test_damaging_any_file_of_a_step_never_restores_other_numbers(
    pristine, tmp_path, reader, monkeypatch):
  warnings = []
  monkeypatch.setattr(absl_logging, "warning",
                      lambda msg, *a: warnings.append(msg % a))
  failures, outcomes = [], {}
  for n_file, rel in enumerate(_files(os.path.join(pristine, "2"))):
    size = os.path.getsize(os.path.join(pristine, "2", rel))
    for n_mutation, (name, mutate) in enumerate(_mutations(size)):
      case = f"{rel} {name}"
      # A new path each time: TensorStore caches what it read by path.
      directory = str(tmp_path / f"case_{n_file}_{n_mutation}")
      shutil.copytree(pristine, directory)
      path = os.path.join(directory, "2", rel)
      with open(path, "rb") as f:
        data = mutate(bytearray(f.read()))
      with open(path, "wb") as f:
        f.write(data)
      warnings.clear()
      try:
        found = _restore(reader, directory)
      except checkpoint.CheckpointError as e:   # a clear error is allowed
        outcomes[case] = "error"
        if "<bound method" in str(e) or "pybind11" in str(e):
          failures.append(f"{case}: error not in words: {e}")
        continue
      except Exception as e:  # pylint: disable=broad-except
        failures.append(f"{case}: unexpected {type(e).__name__}: {e}")
        continue
      if found is None:
        failures.append(f"{case}: nothing restored")
        continue
      step, state, iter_state = found
      want_state, want_iter = _want(step)
      if reader == "restore_params":
        want_state = {"params": want_state["params"]}
      if not _same(state, want_state) or (
          iter_state is not None and iter_state != want_iter):
        failures.append(f"{case}: step {step} restored other numbers")
      if step == 1:
        outcomes[case] = ("previous (checksum)" if any(
            "checksum" in w for w in warnings) else "previous (error)")
        if not any("step 2" in w and "unreadable" in w for w in warnings):
          failures.append(f"{case}: fell back without a warning")
        if reader == "restore_latest" and os.path.isdir(
            os.path.join(directory, "2")):
          failures.append(f"{case}: the damaged step was not moved aside")
      else:
        outcomes[case] = "same"
      for w in warnings:
        if "<bound method" in w or "pybind11" in w:
          failures.append(f"{case}: warning not in words: {w}")
  assert not failures, "\n".join(failures)
  # Every kind of file was damaged, and damage was noticed in each item.
  read = {"state", "model", "checksum"} | (
      {"data_iter"} if reader == "restore_latest" else set())
  assert {c.split("/")[0] for c, o in outcomes.items()
          if o.startswith("previous")} == read


def test_without_the_checksum_a_flipped_data_byte_restores_other_numbers(
    pristine, tmp_path, monkeypatch):
  """The fault the checksum is for: TensorStore reads it without error.
  (Most positions in the largest data file are such; the file's layout
  varies between saves, so a few positions are tried.)"""
  silent = None
  for k, fraction in enumerate((2 / 3, 1 / 2, 3 / 4, 1 / 3, 5 / 6, 1 / 4)):
    directory = str(tmp_path / f"run{k}")
    shutil.copytree(pristine, directory)
    data = max((os.path.join(r, n) for r, _, ns in os.walk(
        os.path.join(directory, "2", "state")) for n in ns if "/d/" in
                os.path.join(r, n)), key=os.path.getsize)
    with open(data, "r+b") as f:
      f.seek(int(os.path.getsize(data) * fraction))
      byte = f.read(1)
      f.seek(-1, 1)
      f.write(bytes([byte[0] ^ 0x5A]))
    with monkeypatch.context() as unchecked:
      unchecked.setattr(checkpoint, "_verify_state", lambda *a, **k: None)
      step, state, _ = _restore("restore_latest", directory)
    if step == 2 and not _same(state, _state(2)):
      silent = directory
      break
  assert silent is not None, "no flip restored other numbers unchecked"
  step, state, _ = _restore("restore_latest", silent)
  assert step == 1 and _same(state, _state(1))


def test_a_step_from_before_checksums_restores_unverified(pristine, tmp_path,
                                                          caplog):
  directory = str(tmp_path / "run")
  shutil.copytree(pristine, directory)
  shutil.rmtree(os.path.join(directory, "2", "checksum"))
  step, state, _ = _restore("restore_latest", directory)
  assert step == 2 and _same(state, _state(2))
  assert any("has no checksum" in r.getMessage() for r in caplog.records)


def test_an_unreadable_checksum_item_is_not_trusted(pristine, tmp_path,
                                                    caplog):
  directory = str(tmp_path / "run")
  shutil.copytree(pristine, directory)
  for root, _, files in os.walk(os.path.join(directory, "2", "checksum")):
    for name in files:
      with open(os.path.join(root, name), "wb"):
        pass   # emptied
  step, state, _ = _restore("restore_latest", directory)
  assert step == 1 and _same(state, _state(1))
  assert any("checksum item cannot be read" in r.getMessage()
             for r in caplog.records)
