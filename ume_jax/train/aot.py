"""Ahead-of-time compile check: every train step of a config, compiled for a
device mesh without training (and without the devices, where jax can).

What it catches before a job is queued on a big topology: a mesh that does
not fit the device count, batch sizes that do not split, parameters that do
not shard, a model that does not trace for the dataset's shapes, and the
per-device memory XLA plans for each step (arguments + temporaries).

``ume_jax/aot_check.py`` is its command line: it builds the config's runs
with ``experiment.setup`` / ``experiment.training_runs`` and compiles each
with ``compile_step``.

Devices: the current backend's, or a TPU topology described by name
(``jax.experimental.topologies``, needs libtpu; compiles for chips that are
not attached). On a CPU host, ``ume_jax.aot_check --num_devices=N`` compiles
for N fake CPU devices: the partitioning is the target's, the memory numbers
are XLA:CPU's.
"""
import time

import jax
import numpy as np

from ume_jax import methods
from ume_jax.config.checks import ConfigError
from ume_jax.infra import mesh as mesh_lib
from ume_jax.train import optim, seeds, trainer


def topology_devices(name: str) -> list:
  """Devices of a TPU topology such as ``v5e:4x4`` (compile-only)."""
  from jax.experimental import topologies  # pylint: disable=g-import-not-at-top
  try:
    return list(topologies.get_topology_desc(name, platform="tpu").devices)
  except Exception as e:  # pylint: disable=broad-except
    raise ConfigError(
        f"Cannot describe TPU topology {name!r} here ({e}). Compiling for a"
        " TPU topology needs libtpu (`pip install jax[tpu]`); on a CPU host"
        " use --num_devices=N instead.") from None


def _abstract_batch(dataset, batch_size: int, batch_sh) -> dict:
  """Shapes and dtypes of one global training batch, on ``batch_sh``."""
  it = dataset.train_iterator(batch_size, None, seed=0, process_index=0,
                              process_count=1)
  try:
    local = next(it)
  finally:
    it.close()
  return {k: jax.ShapeDtypeStruct(np.shape(v), np.asarray(v).dtype,
                                  sharding=batch_sh)
          for k, v in local.items()}


def _megabytes(n) -> float:
  return round(float(n or 0) / 2**20, 2)


def compile_step(method, stage_cfg, dataset, mesh, seed: int = 0) -> dict:
  """Lowers and compiles one train step; returns what XLA planned."""
  tx = optim.make_optimizer(trainer.optim_config(method, stage_cfg), 1000)
  init_fn, state_sh = trainer.plan_state(method, tx, mesh)
  state = mesh_lib.abstract_like(
      jax.eval_shape(init_fn, seeds.init_key(seed)), state_sh)
  batch_sh = mesh_lib.batch_sharding(mesh)
  batch = _abstract_batch(dataset, int(stage_cfg.batch_size), batch_sh)
  step = trainer.jit_train_step(method, tx, stage_cfg, state_sh, batch_sh,
                                mesh, multilabel=dataset.spec.multilabel,
                                seed=seed)
  start = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  seconds = time.perf_counter() - start
  mem = compiled.memory_analysis()
  params = methods.abstract_params(method, mesh)
  return {
      "method": method.name,
      "batch_size": int(stage_cfg.batch_size),
      "compile_s": round(seconds, 2),
      "params_mb": _megabytes(sum(x.size * x.dtype.itemsize
                                  for x in jax.tree.leaves(params))),
      "sharded_params": mesh_lib.sharding_summary(
          params, jax.tree.map(lambda x: x.sharding, params)),
      "argument_mb_per_device": _megabytes(
          getattr(mem, "argument_size_in_bytes", 0)),
      "temp_mb_per_device": _megabytes(getattr(mem, "temp_size_in_bytes", 0)),
  }
