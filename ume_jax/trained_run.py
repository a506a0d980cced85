"""A finished run, from Python: its config, methods, parameters,
predictions and evaluation, on any devices.

    from ume_jax import trained_run

    run = trained_run.load("workdirs/default")      # replicate=k: seed_k
    run.methods            # ['unimodal:image', ..., 'mma', 'ume']
    mma = run.model("mma")
    for batch in run.batches("test"):
      logits = mma.apply(batch, present)            # present: (B, M) bool
    run.evaluate(["mma", "ume"], ["full", "missing:audio"])
    trained_run.reproduce("workdirs/default")       # results.json, again

The config is the one the run recorded (``provenance.json`` of its
training runs); only where the data lives (``data_dir``) and the devices
(``devices``, ``mesh``) may differ, since neither changes a number. The
parameters are read as the run's own evaluation read them
(``validation.select``: each run's best or last checkpoint), onto a mesh
over ``devices`` (default: every device; one plain device works too).
"""
import dataclasses
import functools
import os
from typing import Any, Callable, Iterator, Sequence

import jax
import ml_collections
import numpy as np

from ume_jax import experiment
from ume_jax.eval import evaluation
from ume_jax.eval import results as results_lib
from ume_jax.infra import mesh as mesh_lib
from ume_jax.infra import paths
from ume_jax.missing import scenarios as scenarios_lib
from ume_jax.train import provenance


class RunError(ValueError):
  """The workdir holds no finished run this module can read."""


def recorded_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a run in ``workdir`` was trained with (any replicate's
  training run: they record the same config)."""
  # Run directories: <method>, pretrain/<m>, seed_<k>/<method>,
  # seed_<k>/pretrain/<m> (no "**": one listing per level on GCS).
  found = [p for depth in (1, 2, 3)
           for p in paths.glob(workdir, "*/" * depth + provenance.FILE)]
  for path in sorted(found):
    record = provenance.read(os.path.dirname(path)) or {}
    if record.get("config"):
      return ml_collections.ConfigDict(record["config"])
  raise RunError(f"{workdir!r} holds no {provenance.FILE} with a config: it"
                 " is not a ume_jax workdir, or nothing in it was trained"
                 " yet (run `python -m ume_jax.main --config=... --workdir="
                 f"{workdir}` first).")


def _config_for(workdir: str, devices, mesh: dict | None,
                data_dir: str | None) -> ml_collections.ConfigDict:
  config = recorded_config(workdir)
  config.mesh = ml_collections.ConfigDict(
      mesh or {"data": len(devices), "fsdp": 1})
  if data_dir is not None:
    config.data.data_dir = data_dir
  return config


@dataclasses.dataclass(frozen=True)
class Model:
  """One trained method: ``params`` and ``apply(batch, present)``."""

  name: str
  params: Any
  eval_logits: Callable
  modalities: tuple[str, ...]
  input_shapes: dict
  input_dtypes: dict

  def apply(self, batch: dict, present=None) -> jax.Array:
    """Logits (B, C) of ``batch`` (modality -> inputs (B, ...); a modality
    may be left out) under ``present`` ((B, M) bool in ``modalities``
    order; default ``batch["present"]``, else the modalities the batch
    holds). An absent modality gets the method's substitute, as in
    evaluation."""
    given = [m for m in self.modalities if m in batch]
    if not given:
      raise ValueError(f"the batch holds none of {self.modalities}")
    size = np.shape(batch[given[0]])[0]
    if present is None:
      present = batch.get("present", [[m in batch for m in self.modalities]]
                          * size)
    present = np.asarray(present, bool)
    if present.shape != (size, len(self.modalities)):
      raise ValueError(f"present must be (B, M) = ({size},"
                       f" {len(self.modalities)}) bools for"
                       f" {self.modalities}, got shape {present.shape}")
    missing = [m for i, m in enumerate(self.modalities)
               if m not in batch and present[:, i].any()]
    if missing:
      raise ValueError(f"present says {missing} are present, but the batch"
                       " has no input for them")
    # A modality left out of the batch is absent: its substitute is used,
    # the zeros here are never seen.
    inputs = {m: batch[m] if m in batch else np.zeros(
        (size,) + tuple(self.input_shapes[m]), self.input_dtypes.get(
            m, "float32")) for m in self.modalities}
    return _jitted(self.eval_logits)(self.params, inputs, present)


@functools.lru_cache(maxsize=32)
def _jitted(eval_logits: Callable):
  def logits(params, inputs, present):
    return eval_logits(params, {**inputs, "present": present}, present)
  return jax.jit(logits)


class TrainedRun:
  """One replicate of a finished run (see the module docstring)."""

  def __init__(self, setup: experiment.Setup, root: str, seed: int):
    self.setup, self.root, self.seed = setup, root, seed
    self._evaluators = None

  @property
  def config(self) -> ml_collections.ConfigDict:
    return self.setup.config

  @property
  def modalities(self) -> tuple[str, ...]:
    return tuple(self.setup.dataset.spec.modalities)

  @property
  def methods(self) -> list[str]:
    return list(self._loaded())

  def _loaded(self) -> dict:
    if self._evaluators is None:
      self._evaluators, _ = experiment.load_evaluators(self.setup, self.root)
    return self._evaluators

  def model(self, name: str) -> Model:
    evaluators = self._loaded()
    if name not in evaluators:
      raise KeyError(f"{name!r} is not a method of the run in {self.root};"
                     f" it has {sorted(evaluators)}")
    fn, params = evaluators[name]
    spec = self.setup.dataset.spec
    return Model(name, params, fn, self.modalities, dict(spec.input_shapes),
                 dict(spec.input_dtypes))

  def batches(self, split: str = "test", batch_size: int | None = None
              ) -> Iterator[dict]:
    """The split's evaluation batches, on this run's mesh: each example
    once, in order, the last batch padded (``valid`` False)."""
    return self.setup.dataset.eval_batches(
        split, batch_size or self.config.eval.batch_size,
        mesh_lib.batch_sharding(self.setup.mesh))

  def scenarios(self) -> list[scenarios_lib.Scenario]:
    """The scenarios the run's evaluation scores."""
    e = self.config.eval
    return scenarios_lib.build_scenarios(self.modalities, e.missing_rates,
                                         e.missing_types)

  def evaluate(self, methods: Sequence[str] | None = None,
               scenarios: Sequence[str] | None = None,
               split: str = "test") -> dict:
    """``{method: {scenario: {metric: value}}}`` for the chosen methods
    (default all) and scenario names (default the run's)."""
    evaluators = self._loaded()
    chosen = {n: evaluators[n] for n in (methods or evaluators)}
    known = {s.name: s for s in self.scenarios()}
    names = list(scenarios or known)
    unknown = [n for n in names if n not in known]
    if unknown:
      raise KeyError(f"unknown scenarios {unknown}; the run has {list(known)}")
    return evaluation.evaluate(
        chosen, dataset=self.setup.dataset, split=split,
        scenarios=[known[n] for n in names],
        batch_size=self.config.eval.batch_size, mesh=self.setup.mesh,
        mask_seed=self.config.eval.mask_seed,
        decompose=self.config.eval.decompose)

  def results(self) -> dict:
    """This replicate's results, recomputed (as ``results.json`` holds one
    seed's: ``per_seed`` entries, or a replicate's own file)."""
    return experiment.evaluate(self.setup, self.root, self.seed)


def _open(workdir, devices, mesh, data_dir):
  devices = list(devices if devices is not None else jax.devices())
  config = _config_for(workdir, devices, mesh, data_dir)
  return experiment.setup(config, devices), config


def load(workdir: str, replicate: int = 0, *, devices=None,
         mesh: dict | None = None, data_dir: str | None = None
         ) -> TrainedRun:
  """Replicate ``replicate`` (its seed index) of the run in ``workdir``."""
  s, config = _open(workdir, devices, mesh, data_dir)
  reps = experiment.replicates(config, workdir)
  if not 0 <= replicate < len(reps):
    raise RunError(f"{workdir!r} has {len(reps)} replicates (num_seeds);"
                   f" replicate {replicate} does not exist")
  seed, root = reps[replicate]
  return TrainedRun(s, root, seed)


def reproduce(workdir: str, *, devices=None, mesh: dict | None = None,
              data_dir: str | None = None) -> dict:
  """What the run wrote to ``workdir/results.json``, recomputed from its
  checkpoints on ``devices``."""
  s, config = _open(workdir, devices, mesh, data_dir)
  reps = experiment.replicates(config, workdir)
  return results_lib.combine(
      [experiment.evaluate(s, root, seed) for seed, root in reps],
      [seed for seed, _ in reps])
