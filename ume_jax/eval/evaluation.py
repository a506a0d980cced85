"""Every method under every missing-modality scenario, in one data pass.

Each evaluation batch is read once and scored by all (method, scenario)
pairs. Late-fusion methods, the uni-modal models and ``ume`` carry their
decomposition (``decomposed.py``): one jitted function per batch runs each
of their encoders once on the real inputs and once on the substitutes and
assembles every scenario from those. Any other method takes the general
path: one jitted step per method, run once per scenario (the scenario is a
traced argument, so one compilation serves them all); ``decompose=False``
forces it for every method. Masks depend only on ``eval.mask_seed``, the scenario
and each example's index, so all methods see the same missing modalities. A
scenario that equals another (a modality missing at rate 1 is
``missing:<m>``) is scored once and reported under both names.

``predict`` collects one model's logits on a split (e.g. to fit a
temperature on validation, ``calibration.fit_temperature``) through the same
batches and presence masks.
"""
import functools
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ume_jax.config import rules
from ume_jax.eval import decomposed, metrics
from ume_jax.infra import mesh as mesh_lib
from ume_jax.missing import scenarios as scenarios_lib

# The ``eval`` section.
CONFIG_KEYS = {
    "batch_size": rules.integer(1),
    "missing_rates": rules.each(rules.number(0, 1, low_open=True)),
    # Missing types evaluated at each rate: modalities, "both"/"mixed";
    # () = every modality and the spread type.
    "missing_types": rules.each(rules.text),
    "mask_seed": rules.integer(),
    "checkpoint_dir": rules.text,       # "" -> the workdir
    "primary_metric": rules.text,       # "" -> the dataset's first metric
    # Late-fusion methods' encoders once per batch (decomposed.py); False
    # runs every method's whole forward per scenario (for the benchmark).
    "decompose": rules.boolean,
}

EvalLogitsFn = Callable[[Any, dict, jnp.ndarray], jnp.ndarray]


def make_eval_step(eval_logits: EvalLogitsFn, *, multilabel: bool):
  """(params, batch, scenario arrays, split ranks) -> metric counts.

  The scenario is a traced argument, so one compilation serves them all.
  """

  def eval_step(params, batch: dict, scenario_arrays: dict, ranks):
    present = scenarios_lib.present_mask(scenario_arrays, ranks,
                                         batch["index"])
    present = present & batch["present"]
    logits = eval_logits(params, batch, present)
    return metrics.batch_counts(logits, batch["label"], batch["valid"],
                                multilabel)

  return eval_step


@functools.lru_cache(maxsize=64)
def _jitted_step(eval_logits: EvalLogitsFn, multilabel: bool):
  """One jitted step per model function, kept across calls: validation
  during training evaluates the same model every few hundred steps."""
  return jax.jit(make_eval_step(eval_logits, multilabel=multilabel))


def evaluate(evaluators: Mapping[str, tuple[Callable, Any]], *, dataset,
             split: str, scenarios: Sequence[scenarios_lib.Scenario],
             batch_size: int, mesh, mask_seed: int, decompose: bool = True
             ) -> dict[str, dict[str, dict[str, float]]]:
  """``evaluators``: method name -> (eval_logits, params).

  Returns ``{method: {scenario: {metric: value}}}``.
  """
  spec = dataset.spec
  multilabel = spec.multilabel
  n = spec.split_sizes[split]
  replicated = mesh_lib.replicated(mesh)
  ranks = jax.device_put(
      scenarios_lib.rank_table(mask_seed, len(spec.modalities), n),
      replicated)
  same_as = {s.name: s.same_as(spec.modalities) for s in scenarios}
  scored = [s for s in scenarios if same_as[s.name] is None]
  arrays = {s.name: scenarios_lib.scenario_arrays(s, n) for s in scored}
  split_up = {name: decompose and isinstance(fn, decomposed.Decomposed)
              for name, (fn, _) in evaluators.items()}
  general = {name: (_jitted_step(fn, multilabel), params)
             for name, (fn, params) in evaluators.items()
             if not split_up[name]}
  whole = {name: e for name, e in evaluators.items() if split_up[name]}
  if whole:
    the_plan, part_params, eval_params = decomposed.plan(whole)
    step = decomposed.jitted_step(the_plan, multilabel)
    stacked = jax.device_put(
        decomposed.stack([arrays[s.name] for s in scored]), replicated)
  totals: dict[tuple[str, str], dict] = {}
  for batch in dataset.eval_batches(split, batch_size,
                                    mesh_lib.batch_sharding(mesh)):
    if whole:
      counts = metrics.to_host(step(part_params, eval_params, batch, stacked,
                                    ranks))
      for name in whole:
        for k, s in enumerate(scored):
          totals[name, s.name] = metrics.add(
              totals.get((name, s.name)),
              decomposed.scenario_counts(counts[name], k))
    for name, (jitted, params) in general.items():
      for s in scored:
        counts = jitted(params, batch, arrays[s.name], ranks)
        totals[name, s.name] = metrics.add(totals.get((name, s.name)), counts)
  return {
      name: {s.name: metrics.finalize(
          totals[name, same_as[s.name] or s.name], multilabel)
             for s in scenarios}
      for name in evaluators}


@functools.lru_cache(maxsize=16)
def _predict_step(eval_logits: EvalLogitsFn, mesh):
  """(params, batch, scenario arrays, ranks) -> (logits, label, index,
  valid), replicated so that every process reads them whole."""

  def step(params, batch, scenario_arrays, ranks):
    present = scenarios_lib.present_mask(scenario_arrays, ranks,
                                         batch["index"])
    present = present & batch["present"]
    logits = eval_logits(params, batch, present)
    return logits, batch["label"], batch["index"], batch["valid"]

  return jax.jit(step, out_shardings=mesh_lib.replicated(mesh))


def predict(eval_logits: EvalLogitsFn, params, *, dataset, split: str,
            batch_size: int, mesh, present=None
            ) -> tuple[np.ndarray, np.ndarray]:
  """One model's logits on ``split``: ``(logits (N, C), labels)``, labels
  (N,) int32 or (N, C) multi-hot; row i is example i of the split (dataset
  order), every example exactly once (the last batch's padding dropped).

  ``present`` (M,) bool, in ``dataset.spec.modalities`` order, says which
  modalities the model is given (default all: the logits ``evaluate``
  scores under ``full``); the masks are built as ``make_eval_step`` builds
  them, so an example the dataset itself lacks a modality for
  (``batch["present"]``) lacks it here too. Every process gets the whole
  arrays.
  """
  spec = dataset.spec
  num = len(spec.modalities)
  pattern = (np.ones(num, bool) if present is None
             else np.asarray(present, bool))
  if pattern.shape != (num,):
    raise ValueError(f"present must be ({num},) bools for"
                     f" {spec.modalities}, got shape {pattern.shape}")
  n = spec.split_sizes[split]
  arrays = scenarios_lib.scenario_arrays(
      scenarios_lib.Scenario("predict", tuple(bool(a) for a in ~pattern)), n)
  # A fixed pattern has no example missing at a rate (count 0): the ranks
  # are never compared, zeros will do.
  ranks = jax.device_put(np.zeros((num + 1, n), np.int32),
                         mesh_lib.replicated(mesh))

  jitted = _predict_step(eval_logits, mesh)
  logits_out = labels_out = None
  seen = np.zeros(n, bool)
  for batch in dataset.eval_batches(split, batch_size,
                                    mesh_lib.batch_sharding(mesh)):
    logits, labels, index, valid = (
        np.asarray(x) for x in jax.device_get(
            jitted(params, batch, arrays, ranks)))
    index = index[valid]
    if logits_out is None:
      logits_out = np.zeros((n,) + logits.shape[1:], logits.dtype)
      labels_out = np.zeros((n,) + labels.shape[1:], labels.dtype)
    if seen[index].any():
      raise ValueError(f"{split}: an example came twice from eval_batches")
    seen[index] = True
    logits_out[index] = logits[valid]
    labels_out[index] = labels[valid]
  if not seen.all():
    raise ValueError(f"{split}: {int((~seen).sum())} of {n} examples never"
                     " came from eval_batches")
  return logits_out, labels_out
