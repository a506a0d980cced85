"""Every method under every missing-modality scenario, in one data pass.

Each evaluation batch is read once and scored by all (method, scenario)
pairs; one jitted step per method serves every scenario because the scenario
is a traced argument. Masks depend only on ``eval.mask_seed``, the scenario
and each example's index, so all methods see the same missing modalities. A
scenario that equals another (a modality missing at rate 1 is
``missing:<m>``) is scored once and reported under both names.
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
    # Missing types evaluated at each rate: modalities, "both"/"mixed";
    # () = every modality and the spread type.
    "missing_types": rules.each(rules.text),
    "mask_seed": rules.integer(),
    "checkpoint_dir": rules.text,       # "" -> the workdir
    "primary_metric": rules.text,       # "" -> the dataset's first metric
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


def evaluate(evaluators: Mapping[str, tuple[Callable, Any]], *, dataset,
             split: str, scenarios: Sequence[scenarios_lib.Scenario],
             batch_size: int, mesh, mask_seed: int
             ) -> dict[str, dict[str, dict[str, float]]]:
  """``evaluators``: method name -> (eval_logits, params).

  Returns ``{method: {scenario: {metric: value}}}``.
  """
  spec = dataset.spec
  multilabel = spec.multilabel
  n = spec.split_sizes[split]
  jitted = {name: jax.jit(make_eval_step(fn, multilabel=multilabel))
            for name, (fn, _) in evaluators.items()}
  ranks = jax.device_put(
      scenarios_lib.rank_table(mask_seed, len(spec.modalities), n),
      mesh_lib.replicated(mesh))
  same_as = {s.name: s.same_as(spec.modalities) for s in scenarios}
  scored = [s for s in scenarios if same_as[s.name] is None]
  arrays = {s.name: scenarios_lib.scenario_arrays(s, n) for s in scored}
  totals: dict[tuple[str, str], dict] = {}
  for batch in dataset.eval_batches(split, batch_size,
                                    mesh_lib.batch_sharding(mesh)):
    for name, (_, params) in evaluators.items():
      for s in scored:
        counts = jitted[name](params, batch, arrays[s.name], ranks)
        totals[name, s.name] = metrics.add(totals.get((name, s.name)), counts)
  return {
      name: {s.name: metrics.finalize(
          totals[name, same_as[s.name] or s.name], multilabel)
             for s in scenarios}
      for name in evaluators}
