"""Assembling global jax.Arrays from process-local numpy batches."""

import math

import jax
import numpy as np

PartitionSpec = jax.sharding.PartitionSpec


def data_axis_size(sharding: jax.sharding.NamedSharding) -> int:
  """Number of shards of dim 0 under `sharding` (product of its data axes)."""
  spec = sharding.spec
  axes = spec[0] if len(spec) else None
  if axes is None:
    return 1
  if isinstance(axes, str):
    axes = (axes,)
  return math.prod(sharding.mesh.shape[a] for a in axes)


def batch_sharding(sharding: jax.sharding.NamedSharding):
  """Same mesh, dim 0 sharded like `sharding`, other dims replicated."""
  first = sharding.spec[0] if len(sharding.spec) else None
  return jax.sharding.NamedSharding(sharding.mesh, PartitionSpec(first))


def check_batch_size(global_batch_size: int, process_count: int, sharding):
  if global_batch_size <= 0 or global_batch_size % process_count:
    raise ValueError(
        f"global_batch_size={global_batch_size} must be a positive multiple of"
        f" the process count ({process_count}): each process reads"
        " global_batch_size / process_count examples of every global batch."
        " Use a batch size that the process count divides, or another"
        " number of processes (a checkpoint resumes on any process count"
        " that divides its batch size).")
  if sharding is not None and global_batch_size % data_axis_size(sharding):
    raise ValueError(
        f"global_batch_size={global_batch_size} must be a multiple of the "
        f"number of data shards ({data_axis_size(sharding)}) of {sharding}.")


def to_global(local_batch: dict, sharding, process_count: int) -> dict:
  """Process-local numpy batch -> dict of global arrays sharded on dim 0."""
  sh = batch_sharding(sharding)
  out = {}
  for k, v in local_batch.items():
    v = np.asarray(v)
    shape = (v.shape[0] * process_count,) + v.shape[1:]
    out[k] = jax.make_array_from_process_local_data(sh, v, shape)
  return out
