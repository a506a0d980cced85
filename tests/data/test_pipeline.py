"""Training iterator, evaluation batches, global arrays, registry."""

import json

import jax
import numpy as np
import pytest

from tests import fakes
from ume_jax.data.datasets import avdigits
from ume_jax.data import get_dataset
from ume_jax.data.errors import DataError

P = jax.sharding.PartitionSpec


def _sharding(shape=(8,), names=("data",), spec=P("data")):
  mesh = jax.make_mesh(shape, names, devices=jax.devices()[:np.prod(shape)])
  return jax.sharding.NamedSharding(mesh, spec)


def _take(it, k):
  return [next(it) for _ in range(k)]


def _local(ds, bs, seed, p=0, n=1, split="train"):
  return ds.train_iterator(bs, None, seed=seed, split=split, process_index=p,
                           process_count=n)


def _same(a, b):
  return all(np.array_equal(np.asarray(a[k]), np.asarray(b[k])) for k in a)


def test_batch_values(make_config, fake_arrays):
  ds = get_dataset(make_config())
  b = next(_local(ds, 10, seed=0))
  assert set(b) == {"image", "audio", "label", "present", "index"}
  assert b["image"].shape == (10, 28, 28, 1) and b["image"].dtype == np.float32
  assert b["audio"].shape == (10, 40, 40, 1) and b["audio"].dtype == np.float32
  assert b["label"].dtype == np.int32 and b["present"].dtype == bool
  assert b["present"].shape == (10, 2) and b["present"].all()
  ids = fakes.ids_from_image(b["image"])
  assert len(set(ids)) == 10
  np.testing.assert_array_equal(b["index"], ids)  # the example's own index
  np.testing.assert_array_equal(b["label"], fake_arrays["label_train"][ids])
  for m in ("image", "audio"):
    mean, std = avdigits.STATS[m]
    want = (fake_arrays[f"{m}_train"][ids][..., None] / 255 - mean) / std
    np.testing.assert_allclose(b[m], want, rtol=1e-5, atol=1e-5)


def test_seeded_shuffle(make_config):
  ds = get_dataset(make_config())
  a, b, c = (_take(_local(ds, 10, seed=s), 3) for s in (0, 0, 1))
  assert all(_same(x, y) for x, y in zip(a, b))
  ids = [fakes.ids_from_image(x["image"]).tolist() for x in a]
  ids_c = [fakes.ids_from_image(x["image"]).tolist() for x in c]
  assert ids != ids_c
  assert ids != [list(range(i * 10, i * 10 + 10)) for i in range(3)]


def test_epochs_repeat_and_reshuffle(make_config):
  ds = get_dataset(make_config())
  ids = np.concatenate([fakes.ids_from_image(b["image"])
                        for b in _take(_local(ds, 10, seed=3), 15)])
  epochs = ids.reshape(3, 50)
  for e in epochs:
    assert sorted(e) == list(range(50))
  assert not np.array_equal(epochs[0], epochs[1])


@pytest.mark.parametrize("workers", [0, 2])
def test_state_round_trip(make_config, workers):
  ds = get_dataset(make_config(worker_count=workers))
  it = _local(ds, 10, seed=5)
  _take(it, 7)  # Crosses an epoch boundary (50 examples).
  state = it.get_state()
  state = json.loads(json.dumps(state))  # JSON-serialisable.
  expected = _take(it, 3)
  it.close()
  with _local(ds, 10, seed=5) as fresh:
    fresh.set_state(state)
    assert all(_same(x, y) for x, y in zip(expected, _take(fresh, 3)))
  if not workers:  # Rewinding an iterator works too (slow with workers).
    it = _local(ds, 10, seed=5)
    _take(it, 2)
    it.set_state(state)
    assert _same(expected[0], next(it))


def test_state_resumes_with_another_worker_count(make_config):
  """The state counts batches: worker processes change nothing in what is
  trained, so a run saved with 0 workers resumes with 2 (and back)."""
  plain = get_dataset(make_config(worker_count=0))
  with _local(plain, 10, seed=5) as it:
    _take(it, 6)
    state = json.loads(json.dumps(it.get_state()))
    expected = _take(it, 2)
  with _local(get_dataset(make_config(worker_count=2)), 10, seed=5) as it:
    it.set_state(state)
    assert all(_same(x, y) for x, y in zip(expected, _take(it, 2)))
    state = it.get_state()
    expected = _take(it, 1)
  with _local(plain, 10, seed=5) as it:
    it.set_state(state)
    assert _same(expected[0], next(it))


@pytest.mark.parametrize("n", [2, 4])
def test_global_batches_do_not_depend_on_the_process_count(make_config, n):
  ds = get_dataset(make_config())
  one = [b["index"] for b in _take(_local(ds, 8, seed=0), 13)]  # 2+ epochs
  parts = [[b["index"] for b in _take(_local(ds, 8, seed=0, p=p, n=n), 13)]
           for p in range(n)]
  for step, whole in enumerate(one):
    # Process p holds the p-th contiguous slice of the same global batch.
    np.testing.assert_array_equal(
        np.concatenate([parts[p][step] for p in range(n)]), whole)
  # Each epoch of the stream is a permutation of the whole split.
  stream = np.concatenate(one)
  assert sorted(stream[:50]) == list(range(50))
  assert sorted(stream[50:100]) == list(range(50))
  assert not np.array_equal(stream[:50], stream[50:100])


def test_global_batch_sharded(make_config):
  ds = get_dataset(make_config())
  sh = _sharding()
  g = next(ds.train_iterator(16, sh, seed=0))
  ref = next(_local(ds, 16, seed=0))
  for k, v in g.items():
    assert isinstance(v, jax.Array)
    assert v.shape == ref[k].shape
    assert v.sharding.spec[0] == "data"
    assert len(v.addressable_shards) == 8
    assert {s.data.shape[0] for s in v.addressable_shards} == {2}
    np.testing.assert_array_equal(np.asarray(v), ref[k])


def test_global_batch_2d_mesh(make_config):
  ds = get_dataset(make_config())
  sh = _sharding((4, 2), ("data", "model"), P("data", None, None, None))
  g = next(ds.train_iterator(8, sh, seed=0))
  assert g["image"].shape == (8, 28, 28, 1) and g["label"].shape == (8,)
  assert g["label"].sharding.spec == P("data")
  assert {s.data.shape[0] for s in g["image"].addressable_shards} == {2}
  with pytest.raises(ValueError, match="multiple of the number of data"):
    ds.train_iterator(6, sh, seed=0)


@pytest.mark.parametrize("n", [1, 2, 4])
def test_eval_covers_each_example_once(make_config, fake_arrays, n):
  ds = get_dataset(make_config())
  g = 8
  found = []
  for p in range(n):
    batches = list(ds.eval_batches("test", g, None, process_index=p,
                                   process_count=n))
    assert len(batches) == 4  # ceil(30 / 8), the same for every process.
    for b_i, b in enumerate(batches):
      assert b["valid"].shape == (g // n,) and b["index"].dtype == np.int32
      pos = b_i * g + p * (g // n) + np.arange(g // n)
      np.testing.assert_array_equal(b["valid"], pos < 30)
      np.testing.assert_array_equal(b["index"], np.where(pos < 30, pos, -1))
      v = b["valid"]
      np.testing.assert_array_equal(fakes.ids_from_image(b["image"][v]),
                                    b["index"][v])
      np.testing.assert_array_equal(b["label"][v],
                                    fake_arrays["label_test"][b["index"][v]])
      assert b["present"].all()
      assert not np.asarray(b["image"][~v]).any()
      found.extend(b["index"][v].tolist())
  assert sorted(found) == list(range(30))


def test_eval_global(make_config):
  ds = get_dataset(make_config())
  batches = list(ds.eval_batches("validation", 16, _sharding()))
  assert len(batches) == 2
  assert all(isinstance(b["valid"], jax.Array) for b in batches)
  idx = np.concatenate([np.asarray(b["index"])[np.asarray(b["valid"])]
                        for b in batches])
  np.testing.assert_array_equal(idx, np.arange(20))
  assert batches[1]["image"].sharding.spec[0] == "data"


def test_modality_means(make_config, fake_arrays):
  ds = get_dataset(make_config())
  means = ds.modality_means()
  for m in ("image", "audio"):
    mean, std = avdigits.STATS[m]
    want = (fake_arrays[f"{m}_train"][..., None] / 255 - mean).mean(0) / std
    assert means[m].shape == ds.spec.input_shapes[m]
    assert means[m].dtype == np.float32
    np.testing.assert_allclose(means[m], want, rtol=1e-5, atol=1e-5)
  means["image"][:] = 0  # Callers get a copy of the cache.
  assert ds.modality_means()["image"].any()


def test_augment(make_config):
  plain = next(_local(get_dataset(make_config()), 10, seed=0))
  ds = get_dataset(make_config(augment=True))
  a, b = (next(_local(ds, 10, seed=0)) for _ in range(2))
  assert _same(a, b)  # Deterministic given the seed.
  np.testing.assert_array_equal(a["label"], plain["label"])
  assert not np.array_equal(a["image"], plain["image"])
  assert a["image"].shape == plain["image"].shape


def test_errors(make_config):
  import ml_collections  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError, match="known datasets: avdigits"):
    get_dataset(ml_collections.ConfigDict({"name": "nope"}))
  ds = get_dataset(make_config())
  with pytest.raises(ValueError, match="multiple of the process count"):
    _local(ds, 10, seed=0, p=0, n=4)
  with pytest.raises(ValueError, match="Unknown split"):
    _local(ds, 10, seed=0, split="dev")


@pytest.mark.parametrize("saved_n,resumed_n", [(2, 1), (1, 2), (2, 4)])
def test_state_resumes_on_another_process_count(make_config, saved_n,
                                                resumed_n):
  """A run saved by P processes continues on P' at the same global batch:
  the global batches after the resume are those of the uninterrupted run
  (the position counts global batches; their order is one permutation of
  the split per epoch, whatever the process count)."""
  ds = get_dataset(make_config())
  whole = [b["index"] for b in _take(_local(ds, 8, seed=4), 10)]  # 1+ epoch
  saved = []
  for p in range(saved_n):
    with _local(ds, 8, seed=4, p=p, n=saved_n) as it:
      _take(it, 7)   # past the epoch boundary (50 examples)
      saved.append(json.loads(json.dumps(it.get_state())))
  parts = []
  for p in range(resumed_n):
    with _local(ds, 8, seed=4, p=p, n=resumed_n) as it:
      it.set_state(it.state_from_processes(saved))
      assert it.get_state()["process_index"] == p
      parts.append([b["index"] for b in _take(it, 3)])
  for i, want in enumerate(whole[7:]):
    np.testing.assert_array_equal(
        np.concatenate([parts[p][i] for p in range(resumed_n)]), want)


def test_another_process_count_is_refused_where_it_cannot_continue(
    make_config):
  ds = get_dataset(make_config())
  saved = []
  for p in range(2):
    with _local(ds, 8, seed=4, p=p, n=2) as it:
      _take(it, 3 + p)   # processes at different positions: no checkpoint
      saved.append(it.get_state())
  with _local(ds, 8, seed=4) as it:
    with pytest.raises(DataError, match=r"different input positions.*"
                       r"process 0: .*'batches': 3.*process 1: "
                       r".*'batches': 4"):
      it.state_from_processes(saved)
    with pytest.raises(DataError, match="no input position per process"):
      it.state_from_processes([])
    # The order's settings are still checked once remapped.
    other_seed = [{**s, "seed": 5, "batches": 3} for s in saved]
    with pytest.raises(DataError, match="seed: saved 5, now 4"):
      it.set_state(it.state_from_processes(other_seed))
  # A global batch that the new process count cannot split is refused when
  # the iterator is built, before any checkpoint is read.
  with pytest.raises(ValueError, match=r"global_batch_size=8 must be a"
                     r" positive multiple of the process count \(3\).*"
                     "any process count that divides"):
    _local(ds, 8, seed=4, p=0, n=3)
