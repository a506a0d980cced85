"""Training time per epoch with and without the frozen-prefix cache, side
by side in one run, on the stages of a config that freezes encoder layers.

    .venv/bin/python benchmarks/frozen_prefix.py --config=configs/clipart.py \
        [--steps=20] [--repeats=3] [--stages=unimodal:image,unimodal:text,mma] \
        [--cache_dir=/tmp/empty]

For each stage: the method's jitted, sharded train step as
``trainer.train`` runs it (``trainer.plan_state``, ``trainer.jit_train_step``
on the stage's optimizer, the pipeline's training iterator), once on raw
inputs and once on cached prefixes (``frozen_prefix.prepare``: the cache
is filled first if it is not there yet, and that fill is timed apart).
Data loading is included on both sides (the cached side gathers its rows in
the pipeline). After one warm-up call each (it compiles), ``--steps`` steps
of each side are timed ``--repeats`` times, alternating which goes first;
medians are shown. The cache is filled from the packaged weights (so a
later run of the config reads that entry); the timed steps start from a
fresh initialisation (the timing does not depend on the weights). An epoch is ``train examples // batch_size``
steps. The last line is ``prefix_speedup=<sum of the stages' epoch times
without / with the cache>``. Measurements: README's "Frozen layers computed
once".
"""
import statistics
import time

from absl import app, flags, logging
import jax
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", "configs/clipart.py",
                                          "The run's configuration file.")
_STEPS = flags.DEFINE_integer("steps", 20, "Timed steps per repeat.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed repeats of each side.")
_CACHE_DIR = flags.DEFINE_string(
    "cache_dir", "", "Where entries live (default: with the prepared data);"
    " an empty folder times the fill.")
_STAGES = flags.DEFINE_list("stages", ["unimodal:image", "unimodal:text",
                                       "mma"], "Methods timed.")


def _runner(s, method, section, prefix):
  """A function running n train steps (state carried over calls)."""
  from ume_jax.infra import mesh as mesh_lib  # pylint: disable=g-import-not-at-top
  from ume_jax.train import optim, seeds, trainer  # pylint: disable=g-import-not-at-top
  tx = optim.make_optimizer(trainer.optim_config(method, section), 10_000)
  init_fn, state_sh = trainer.plan_state(method, tx, s.mesh)
  batch_sh = mesh_lib.batch_sharding(s.mesh)
  step = trainer.jit_train_step(
      method, tx, section, state_sh, batch_sh, s.mesh,
      multilabel=s.dataset.spec.multilabel, seed=0, prefix=prefix)
  data = s.dataset.train_iterator(
      section.batch_size, batch_sh, seed=0,
      transform=None if prefix is None else prefix.gather)
  box = [init_fn(seeds.init_key(0))]   # timing does not need the weights

  def run(n):
    state = box[0]
    for _ in range(n):
      state, scalars = step(state, next(data))
    jax.block_until_ready(scalars["loss"])
    box[0] = state

  return run


def _timed(run, n) -> float:
  t = time.perf_counter()
  run(n)
  return time.perf_counter() - t


def _stage(s, name):
  from ume_jax import experiment  # pylint: disable=g-import-not-at-top
  from ume_jax.train import frozen_prefix, trainer  # pylint: disable=g-import-not-at-top
  if name.startswith("unimodal:"):
    method, section = s.methods.unimodal[name.split(":")[1]], s.config.pretrain
  else:
    method = s.methods.fusion[name]
    section = s.config[experiment.SECTION_OF[name]]
  from ume_jax.weights import graft  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  settings = frozen_prefix.settings(s.config, experiment.data_identity(s))
  if _CACHE_DIR.value:
    settings = frozen_prefix.Settings(_CACHE_DIR.value,
                                      settings.data_identity)
  # The packaged weights, as the run's frozen layers hold them in every
  # stage: the entry filled here is the one the run itself reads.
  slot = ((lambda _: "encoder") if name.startswith("unimodal:")
          else (lambda m: f"{m}_encoder"))
  encoders = ({name.split(":")[1]: s.config.model.encoders[
      name.split(":")[1]]} if name.startswith("unimodal:")
              else s.config.model.encoders)
  init_fn, _ = trainer.plan_state(method, optax.identity(), s.mesh)
  params = init_fn(jax.random.key(0)).params
  graft_fn = graft.initializer(encoders, slot)
  if graft_fn is not None:
    params = graft_fn(params)
  t = time.perf_counter()
  prefix = frozen_prefix.prepare(method, params,
                                 trainer.optim_config(method, section),
                                 s.dataset, s.mesh, settings)
  fill = time.perf_counter() - t
  if prefix is None:
    print(f"{name}: no frozen prefix under this config; skipped")
    return None
  runners = {"raw": _runner(s, method, section, None),
             "cached": _runner(s, method, section, prefix)}
  for run in runners.values():
    run(1)   # compiles
  times = {k: [] for k in runners}
  for r in range(_REPEATS.value):
    order = list(runners) if r % 2 == 0 else list(runners)[::-1]
    for k in order:
      times[k].append(_timed(runners[k], _STEPS.value) / _STEPS.value)
  per_step = {k: statistics.median(v) for k, v in times.items()}
  steps = s.dataset.spec.split_sizes["train"] // section.batch_size
  print(f"{name}: prefix {dict(prefix.starts)}, cache ready in {fill:.1f} s;"
        f" per step raw {per_step['raw'] * 1e3:.1f} ms, cached"
        f" {per_step['cached'] * 1e3:.1f} ms"
        f" (spread raw {min(times['raw']) * 1e3:.1f}-"
        f"{max(times['raw']) * 1e3:.1f}, cached"
        f" {min(times['cached']) * 1e3:.1f}-{max(times['cached']) * 1e3:.1f});"
        f" epoch of {steps} steps: raw {per_step['raw'] * steps:.1f} s,"
        f" cached {per_step['cached'] * steps:.1f} s,"
        f" x{per_step['raw'] / per_step['cached']:.2f}")
  return per_step["raw"] * steps, per_step["cached"] * steps


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  from ume_jax import experiment  # pylint: disable=g-import-not-at-top
  config = _CONFIG.value
  config.frozen_prefix_cache = True
  s = experiment.setup(config)
  epochs = [e for e in (_stage(s, n) for n in _STAGES.value) if e]
  raw, cached = sum(e[0] for e in epochs), sum(e[1] for e in epochs)
  print(f"epoch of every timed stage: raw {raw:.1f} s, cached {cached:.1f} s")
  print(f"prefix_speedup={raw / cached:.2f}")


if __name__ == "__main__":
  app.run(main)
