"""The shared input pipeline: seeded training iterator and padded evaluation.

A dataset provides random-access sources per split (e.g. tfds ArrayRecord data
sources) and grain transforms; `Dataset` turns them into batches following the
batch convention (see `transforms.py`), plus `valid`/`index` for evaluation.

Global vs process-local output: batches are global `jax.Array`s built with
`jax.make_array_from_process_local_data` when a sharding is given and
process_index/process_count are the real ones (the defaults). When they are
overridden to simulate other processes (tests), or `sharding` is None, the
process-local numpy batches are returned instead.
"""

import os
from typing import Callable, Iterator, Mapping

import grain
import jax
import numpy as np

from ume_jax.data import global_batch
from ume_jax.data.errors import DataError
from ume_jax.data.spec import DatasetSpec


def _processes(process_index, process_count, sharding):
  real = (jax.process_index(), jax.process_count())
  p = real[0] if process_index is None else int(process_index)
  n = real[1] if process_count is None else int(process_count)
  if not 0 <= p < n:
    raise ValueError(f"process_index={p} not in [0, process_count={n}).")
  return p, n, sharding is not None and (p, n) == real


class TrainIterator:
  """Infinite iterator of training batches with JSON-serialisable state.

  Iterates a grain pipeline that ``start(k)`` builds from the k-th batch on
  (the batches are a random-access ``MapDataset``, so skipping costs
  nothing); `set_state(get_state())` (on this or a fresh iterator built with
  the same arguments) makes the next batch identical. The state is the
  number of batches consumed, so it is the same with any number of worker
  processes (a run resumes with another ``data.worker_count``); restoring it
  under another seed, split or batch size is refused with a DataError naming
  what changed. The count is one of *global* batches (each process takes one
  local slice of every global batch), so a run saved by P processes resumes
  on P' (``state_from_processes``).
  """

  def __init__(self, start: Callable[[int], grain.IterDataset], finish,
               info: dict):
    self._start = start
    self._it = iter(start(0))
    self._consumed = 0
    self._finish = finish
    self._info = info

  def __iter__(self):
    return self

  def __next__(self) -> dict:
    batch = next(self._it)
    self._consumed += 1
    return self._finish(batch)

  def close(self) -> None:
    """Stops grain worker processes now (otherwise on garbage collection)."""
    it = self._it
    close = getattr(it, "close", None) or getattr(
        getattr(it, "_iterator", None), "close", None)
    if close is not None:
      close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

  def get_state(self) -> dict:
    return {"batches": self._consumed, **self._info}

  def state_from_processes(self, saved: list[dict]) -> dict:
    """This iterator's state, from the states every process of a run with
    another number of processes saved (in process order).

    The position is the number of *global* batches consumed, and the order
    of global batches does not depend on the process count (one seeded
    permutation of the whole split per epoch), so the run continues at the
    same global batch: process p of P' takes the p-th slice of it. Refused
    (DataError) when the saved processes disagree on that count or on the
    order's settings, which no complete checkpoint holds.
    """
    p, n = self._info["process_index"], self._info["process_count"]
    # A global batch size that n does not divide never gets here: building
    # the iterator refused it (global_batch.check_batch_size).
    if not saved or not all(isinstance(s, dict) for s in saved):
      raise DataError(
          f"Cannot resume the input pipeline on {n} processes: the"
          " checkpoint's data_iter item holds no input position per process"
          f" (found {saved!r:.200}); expected one state per process of the"
          " saved run. Start a fresh workdir.")
    layout = ("process_index", "process_count")
    shared = [{k: v for k, v in s.items() if k not in layout} for s in saved]
    if any(s != shared[0] for s in shared[1:]):
      raise DataError(
          f"Cannot resume the input pipeline on {n} processes: the"
          f" {len(saved)} processes that saved the checkpoint's data_iter"
          " item were at different input positions or settings"
          f" ({', '.join(f'process {i}: {s!r}' for i, s in enumerate(shared))}),"
          " while every process of a run consumes the same global batches;"
          " expected one shared position to remap onto this run's processes."
          " Resume with the saved number of processes, or start a fresh"
          " workdir.")
    return {**shared[0], "process_index": p, "process_count": n}

  def set_state(self, state: dict) -> None:
    changed = {k: (state.get(k), v) for k, v in self._info.items()
               if state.get(k) != v}
    if changed:
      raise DataError(
          "Cannot resume the input pipeline: the saved iterator state was made"
          f" with different settings ({', '.join(f'{k}: saved {a!r}, now {b!r}' for k, (a, b) in changed.items())})."
          " Resume with the settings of the saved run, or start a fresh"
          " workdir.")
    if "batches" not in state:
      raise DataError(
          "Cannot resume the input pipeline: the saved iterator state is in"
          " an older form (no batch count). Start a fresh workdir.")
    self.close()
    self._consumed = int(state["batches"])
    self._it = iter(self._start(self._consumed))


class _AddIndex:
  """Record -> record with its index in the split (training batches carry
  it, so per-example choices such as permanent training-time missingness
  depend on the example, not on when it is drawn)."""

  def __init__(self, split_size: int):
    self._n = split_size

  def __call__(self, i: int, record: dict) -> dict:
    # Under shuffle + repeat grain passes the position in the repeated
    # stream (epoch * N + i); the example is the same in every epoch.
    return {**record, "index": np.int32(i % self._n)}


class _KeepIndex(grain.transforms.Map):
  """Runs a dataset's batch preprocessing with ``index`` passed around it."""

  def __init__(self, inner):
    self._inner = inner

  def map(self, batch: dict) -> dict:
    batch = dict(batch)
    index = np.asarray(batch.pop("index"), np.int32)
    return {**self._inner.map(batch), "index": index}


class InMemorySource:
  """A random-access source read once into memory, for small datasets.

  Decoding an ArrayRecord example costs ~100-200 us here, more than the
  model's step per example on avdigits; reading each split once makes an
  epoch cost only indexing. Same records, same order, same indices.
  """

  def __init__(self, source):
    self._records = [source[i] for i in range(len(source))]

  def __len__(self) -> int:
    return len(self._records)

  def __getitem__(self, index: int):
    return self._records[index]


class _EvalExample:
  """Local position -> preprocessed example (or padding) with valid/index."""

  def __init__(self, source, preprocess, n, global_bs, local_bs, p, pad):
    self._source, self._preprocess, self._n = source, preprocess, n
    self._g, self._l, self._p, self._pad = global_bs, local_bs, p, pad

  def __call__(self, pos: int) -> dict:
    idx = (pos // self._l) * self._g + self._p * self._l + pos % self._l
    if idx < self._n:
      ex = self._preprocess.map(self._source[idx])
      return {**ex, "valid": np.True_, "index": np.int32(idx)}
    return {**self._pad, "valid": np.False_, "index": np.int32(-1)}


class Dataset:
  """A dataset in the registry: spec + batched train/eval pipelines."""

  def __init__(self, spec: DatasetSpec, sources: Mapping[str, object],
               preprocess: grain.transforms.Map,
               augment: grain.transforms.RandomMap | None = None, *,
               worker_count: int = 0, worker_buffer_size: int = 1,
               read_threads: int | None = None,
               cache_in_memory: bool = False):
    self.spec = spec
    self._cache = bool(cache_in_memory)
    self._sources = dict(sources)
    self._preprocess = preprocess
    self._augment = augment
    self._worker_count = int(worker_count)
    self._worker_buffer_size = int(worker_buffer_size)
    self._read_threads_override = read_threads
    self._means = None
    # Token modalities -> their tokenizer's vocabulary size (every id is
    # below it), where the loader knows it: checked against the encoders'
    # embedding tables before anything is built.
    self.vocab_sizes: dict[str, int] = {}

  @classmethod
  def from_config(cls, spec: DatasetSpec, sources: Mapping[str, object],
                  preprocess, augment, data_config, *,
                  cache_by_default: bool = False) -> "Dataset":
    """A Dataset with the pipeline knobs every dataset reads from
    ``config.data``: worker_count, worker_buffer_size, read_threads and
    cache_in_memory (``cache_by_default`` when unset)."""
    return cls(
        spec, sources, preprocess, augment,
        worker_count=data_config.get("worker_count", 0) or 0,
        worker_buffer_size=data_config.get("worker_buffer_size", 1) or 1,
        read_threads=data_config.get("read_threads", None),
        cache_in_memory=data_config.get("cache_in_memory", cache_by_default))

  def _read_threads(self) -> int:
    """Reader threads per process doing the work (grain's default of 16 is
    slower than 2 on a 2-CPU machine: the decoding holds the GIL)."""
    if self._read_threads_override:
      return self._read_threads_override
    cpus = os.cpu_count() or 1
    return max(1, min(16, cpus // max(self._worker_count, 1)))

  def _source(self, split):
    if split not in self._sources:
      raise ValueError(f"Unknown split {split!r} of {self.spec.name}; known: "
                       f"{sorted(self._sources)}.")
    if self._cache and not isinstance(self._sources[split], InMemorySource):
      self._sources[split] = InMemorySource(self._sources[split])
    return self._sources[split]

  def train_iterator(self, global_batch_size: int,
                     sharding: jax.sharding.NamedSharding | None, *, seed: int,
                     split: str = "train", process_index=None,
                     process_count=None,
                     transform: Callable[[dict], dict] | None = None
                     ) -> TrainIterator:
    """Seeded, shuffled, infinitely repeated batches, drop_remainder.

    ``transform`` (host batch -> host batch, after preprocessing), if given,
    is applied to every local batch (e.g. ``frozen_prefix.Prefix.gather``).

    The order is global: one seeded permutation of the whole split per
    epoch, cut into global batches of ``global_batch_size``; process p of P
    takes the p-th contiguous slice of each global batch. So the examples of
    every global batch, and their order, are the same for any number of
    processes: a 2-process run trains on exactly the batches of a 1-process
    run (and draws the same per-position masks).
    """
    p, n, make_global = _processes(process_index, process_count, sharding)
    global_batch.check_batch_size(global_batch_size, n, sharding)
    source = self._source(split)
    local_size = global_batch_size // n
    # MapDataset rather than DataLoader: grain's DataLoader spent ~0.3 ms of
    # per-element thread bookkeeping here, 4x the model's step per example.
    ds = grain.MapDataset.source(source).map_with_index(_AddIndex(len(source)))
    ds = ds.shuffle(seed=int(seed)).repeat(None)  # a new order every epoch
    if self._augment is not None:
      ds = ds.random_map(self._augment, seed=int(seed))
    # Local batches in stream order; global batch b is local batches
    # b*n .. b*n+n-1, of which this process takes the p-th. Drop the
    # remainder of the stream, not of an epoch: batches span epoch ends.
    # Batch before standardising: one vectorised op per batch.
    ds = ds.batch(local_size, drop_remainder=True)[p::n].map(
        _KeepIndex(self._preprocess))
    if transform is not None:
      ds = ds.map(transform)

    def start(first_batch: int) -> grain.IterDataset:
      iter_ds = ds[first_batch:].to_iter_dataset(grain.ReadOptions(
          num_threads=0 if self._cache else self._read_threads(),
          prefetch_buffer_size=0 if self._cache else 2))
      if self._worker_count > 0:
        iter_ds = iter_ds.mp_prefetch(grain.MultiprocessingOptions(
            num_workers=self._worker_count,
            per_worker_buffer_size=self._worker_buffer_size))
      return iter_ds

    if make_global:
      finish = lambda b: global_batch.to_global(b, sharding, n)
    else:
      finish = lambda b: b
    info = {"dataset": self.spec.name, "split": split, "seed": int(seed),
            "global_batch_size": global_batch_size, "process_index": p,
            "process_count": n}
    return TrainIterator(start, finish, info)

  def eval_batches(self, split: str, global_batch_size: int, sharding, *,
                   process_index=None, process_count=None) -> Iterator[dict]:
    """Each example of `split` exactly once, in order, padded.

    Global batch b covers indices [b*G, (b+1)*G); process p takes the
    contiguous slice [b*G + p*G/P, b*G + (p+1)*G/P). Indices >= N are padding:
    `valid` False, `index` -1, inputs zero, label 0, `present` True.
    """
    p, n, make_global = _processes(process_index, process_count, sharding)
    global_batch.check_batch_size(global_batch_size, n, sharding)
    source = self._source(split)
    num = len(source)
    local = global_batch_size // n
    num_batches = -(-num // global_batch_size)
    pad = self._padding()
    ds = grain.MapDataset.range(num_batches * local).map(
        _EvalExample(source, self._preprocess, num, global_batch_size, local,
                     p, pad))
    ds = ds.batch(local, drop_remainder=True).to_iter_dataset(
        grain.ReadOptions(num_threads=self._read_threads(),
                          prefetch_buffer_size=256))
    for batch in ds:
      yield global_batch.to_global(batch, sharding, n) if make_global else batch

  def _padding(self) -> dict:
    spec = self.spec
    pad = {m: np.zeros(spec.input_shapes[m],
                        spec.input_dtypes.get(m, "float32"))
           for m in spec.modalities}
    pad["label"] = (np.zeros(spec.num_classes, np.float32) if spec.multilabel
                    else np.int32(0))
    pad["present"] = np.ones(len(spec.modalities), bool)
    return pad

  def modality_means(self) -> dict[str, np.ndarray]:
    """Mean preprocessed (un-augmented) input per modality over train.

    Only examples where the modality is present count. Computed once, cached.
    """
    if self._means is None:
      mods = self.spec.modalities
      sums = {m: np.zeros(self.spec.input_shapes[m], np.float64) for m in mods}
      counts = np.zeros(len(mods), np.int64)
      for b in self.eval_batches("train", 256, None, process_index=0,
                                 process_count=1):
        w = b["present"] & b["valid"][:, None]
        counts += w.sum(0)
        for i, m in enumerate(mods):
          sums[m] += np.tensordot(w[:, i].astype(np.float64), b[m], axes=1)
      self._means = {m: (sums[m] / max(int(counts[i]), 1)).astype(np.float32)
                     for i, m in enumerate(mods)}
    return {m: v.copy() for m, v in self._means.items()}
