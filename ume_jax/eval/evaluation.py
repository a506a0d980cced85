"""Every method under every missing-modality scenario, in one data pass.

Each evaluation batch is read once and scored by all (method, scenario)
pairs; one jitted step per method serves every scenario because the scenario
is a traced argument. Masks depend only on ``eval.mask_seed`` and each
example's index, so all methods see the same missing modalities.
"""
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp

from ume_jax.config import rules
from ume_jax.eval import metrics
from ume_jax.infra import mesh as mesh_lib
from ume_jax.missing import scenarios as scenarios_lib

# The ``eval`` section.
CONFIG_KEYS = {
    "batch_size": rules.integer(1),
    "missing_rates": rules.each(rules.number(0, 1, low_open=True)),
    "mask_seed": rules.integer(),
    "checkpoint_dir": rules.text,       # "" -> the workdir
    "primary_metric": rules.text,       # "" -> the dataset's first metric
}

EvalLogitsFn = Callable[[Any, dict, jnp.ndarray], jnp.ndarray]


def make_eval_step(eval_logits: EvalLogitsFn, *, multilabel: bool,
                   mask_seed: int):
  """(params, batch, scenario arrays) -> metric counts for that scenario.

  The scenario is a traced argument, so one compilation serves them all.
  """

  def eval_step(params, batch: dict, scenario_arrays: dict):
    present = scenarios_lib.present_mask(scenario_arrays, batch["index"],
                                         mask_seed)
    present = present & batch["present"]
    logits = eval_logits(params, batch, present)
    return metrics.batch_counts(logits, batch["label"], batch["valid"],
                                multilabel)

  return eval_step


def evaluate(evaluators: Mapping[str, tuple[Callable, Any]], *, dataset,
             split: str, scenarios: Sequence[scenarios_lib.Scenario],
             batch_size: int, mesh, mask_seed: int
             ) -> dict[str, dict[str, dict[str, float]]]:
  """``evaluators``: method name -> (eval_logits, params).

  Returns ``{method: {scenario: {metric: value}}}``.
  """
  multilabel = dataset.spec.multilabel
  jitted = {
      name: jax.jit(make_eval_step(fn, multilabel=multilabel,
                                   mask_seed=mask_seed))
      for name, (fn, _) in evaluators.items()}
  arrays = {s.name: scenarios_lib.scenario_arrays(s) for s in scenarios}
  totals: dict[tuple[str, str], dict] = {}
  for batch in dataset.eval_batches(split, batch_size,
                                    mesh_lib.batch_sharding(mesh)):
    for name, (_, params) in evaluators.items():
      for s in scenarios:
        counts = jitted[name](params, batch, arrays[s.name])
        totals[name, s.name] = metrics.add(totals.get((name, s.name)), counts)
  return {
      name: {s.name: metrics.finalize(totals[name, s.name], multilabel)
             for s in scenarios}
      for name in evaluators}
