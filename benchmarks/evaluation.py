"""Evaluation time: the general path against the decomposed one, on the
same checkpoints, side by side in one run.

    .venv/bin/python benchmarks/evaluation.py --config=configs/default.py \
        --workdir=workdirs/default [--split=test] [--repeats=3]

``--workdir`` holds a finished run of ``--config`` (``make run`` leaves one
in workdirs/default); config overrides and ``:variants`` work as for
``ume_jax.main``. Every method the run evaluates (the uni-modal models, the
fusion methods, calibrated ``ume``) under every scenario of the config, on
one split, through ``evaluation.evaluate``: ``general`` runs each method's
whole forward once per scenario, ``decomposed`` each encoder once on the
real inputs and once on the substitutes per batch
(``ume_jax/eval/decomposed.py``). The first call of each path is reported
apart (it compiles); then ``--repeats`` warm calls of each, alternating.
The two paths' metrics are compared: accuracy (or F1) must be identical,
the largest NLL / ECE difference is printed. The last line is
``eval_speedup=<median general time / median decomposed time>``.
Measurements: README's "Evaluation" section.
"""
import statistics
import time

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", "configs/default.py",
                                          "The run's configuration file.")
_WORKDIR = flags.DEFINE_string("workdir", "workdirs/default",
                               "A finished run of the config.")
_SPLIT = flags.DEFINE_enum("split", "test", ["validation", "test"],
                           "The split evaluated.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Warm calls of each path.")


def _differences(general: dict, fast: dict) -> tuple[int, float]:
  """(decision metrics that differ, the largest |NLL| or |ECE| gap)."""
  differing, gap = 0, 0.0
  for method, rows in general.items():
    for scenario, values in rows.items():
      for metric, v in values.items():
        d = abs(v - fast[method][scenario][metric])
        if metric in ("nll", "ece"):
          gap = max(gap, d)
        elif d:
          differing += 1
  return differing, gap


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)   # Orbax logs every file at INFO
  from ume_jax import experiment  # pylint: disable=g-import-not-at-top
  from ume_jax.eval import evaluation  # pylint: disable=g-import-not-at-top
  from ume_jax.missing import scenarios as scenarios_lib  # pylint: disable=g-import-not-at-top
  config = _CONFIG.value
  s = experiment.setup(config)
  evaluators, _ = experiment.load_evaluators(s, _WORKDIR.value)
  spec = s.dataset.spec
  scenarios = scenarios_lib.build_scenarios(
      spec.modalities, config.eval.missing_rates, config.eval.missing_types)
  n = spec.split_sizes[_SPLIT.value]
  print(f"{len(evaluators)} methods x {len(scenarios)} scenarios,"
        f" {_SPLIT.value} ({n} examples), eval batch {config.eval.batch_size}")

  def timed(path):
    start = time.perf_counter()
    out = evaluation.evaluate(
        evaluators, dataset=s.dataset, split=_SPLIT.value,
        scenarios=scenarios, batch_size=config.eval.batch_size, mesh=s.mesh,
        mask_seed=config.eval.mask_seed, decompose=path == "decomposed")
    return time.perf_counter() - start, out

  paths = ("general", "decomposed")
  times = {p: [] for p in paths}
  outputs = {}
  for p in paths:
    first, outputs[p] = timed(p)
    print(f"{p:>10}: first call {first:7.2f} s (with compilation)")
  for _ in range(_REPEATS.value):
    for p in paths:
      times[p].append(timed(p)[0])
  for p in paths:
    med = statistics.median(times[p])
    print(f"{p:>10}: median {med:7.3f} s over {len(times[p])}"
          f" (min {min(times[p]):.3f}, max {max(times[p]):.3f}),"
          f" {n / med:9.1f} examples/s")
  differing, gap = _differences(outputs["general"], outputs["decomposed"])
  print(f"decision metrics that differ: {differing}; largest NLL/ECE"
        f" difference: {gap:.2e}")
  print(f"eval_speedup={statistics.median(times['general']) / statistics.median(times['decomposed']):.2f}")


if __name__ == "__main__":
  app.run(main)
