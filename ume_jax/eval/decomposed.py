"""Decomposed evaluation: per batch, each encoder runs once on the real
inputs and once on its substitute; every scenario is assembled from those.

Late fusion is what makes this exact: an encoder sees either its real input
or the substitute (zeros, the mean input, missing-aware prompts' fill -
the same for every example), never a mix, so a scenario's logits are a
row-wise selection of the two passes' outputs followed by the cheap fusion
head. The general path (``evaluation.make_eval_step``) instead runs every
method's whole forward once per scenario.

A ``Decomposed`` is an eval-logits function - calling it is the model's own
forward, which the general path and ``predict`` use - that also says how
to split that work:

- ``parts(params)`` -> ``{piece: (fn, part_params)}``: the per-batch
  computations ``fn(part_params, batch)``, which no scenario changes. Two
  pieces with the same ``fn`` and the same ``part_params`` object are
  computed once per batch even across methods: ``ume``'s pieces are the
  uni-modal models' own.
- ``assemble(params, pieces, present)`` -> logits ``(B, C)``.

``Plan`` names, for a set of evaluators, which distinct parts to compute and
which pieces each evaluator assembles; ``jitted_step`` is one jitted
function per plan that computes every part once and every scenario
(vmapped) and returns metric counts with a leading scenario axis.
"""
import dataclasses
import functools
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from ume_jax.eval import metrics
from ume_jax.missing import scenarios as scenarios_lib

Parts = Mapping[str, tuple[Callable[[Any, dict], Any], Any]]


@dataclasses.dataclass(frozen=True, eq=False)
class Decomposed:
  """Eval logits ``general(params, batch, present)``, also computable as
  ``assemble(params, {p: fn(pp, batch) for p, (fn, pp) in
  parts(params).items()}, present)`` (equal within float rounding)."""

  general: Callable[[Any, dict, jnp.ndarray], jnp.ndarray]
  parts: Callable[[Any], Parts]
  assemble: Callable[[Any, Mapping[str, Any], jnp.ndarray], jnp.ndarray]

  def __call__(self, params, batch, present):
    return self.general(params, batch, present)

  def pieces(self, params, batch) -> dict:
    """This evaluator's pieces of ``batch``, computed on their own."""
    return {p: fn(pp, batch) for p, (fn, pp) in self.parts(params).items()}


@dataclasses.dataclass(frozen=True)
class Plan:
  """``parts``: (fn, index into the distinct part params) per distinct
  part; ``evaluators``: (name, assemble, ((piece, part index), ...))."""

  parts: tuple[tuple[Callable, int], ...]
  evaluators: tuple[tuple[str, Callable, tuple[tuple[str, int], ...]], ...]


def plan(evaluators: Mapping[str, tuple[Decomposed, Any]]
         ) -> tuple[Plan, list, list]:
  """(plan, distinct part params, each evaluator's params). Part params
  are told apart by object identity: the same parameters restored twice
  are computed twice, never confused."""
  part_params, param_index = [], {}
  parts, part_index = [], {}
  rows = []
  for name, (fn, params) in evaluators.items():
    mapping = []
    for piece, (part_fn, pp) in fn.parts(params).items():
      if id(pp) not in param_index:
        param_index[id(pp)] = len(part_params)
        part_params.append(pp)   # held, so no id is reused meanwhile
      key = (part_fn, param_index[id(pp)])
      if key not in part_index:
        part_index[key] = len(parts)
        parts.append(key)
      mapping.append((piece, part_index[key]))
    rows.append((name, fn.assemble, tuple(mapping)))
  return (Plan(tuple(parts), tuple(rows)), part_params,
          [params for _, params in evaluators.values()])


def _per_scenario(assemble, params, pieces, batch, ranks, multilabel):
  """scenario arrays -> the evaluator's metric counts on ``batch``."""

  def counts(arrays):
    present = scenarios_lib.present_mask(arrays, ranks, batch["index"])
    logits = assemble(params, pieces, present & batch["present"])
    return metrics.batch_counts(logits, batch["label"], batch["valid"],
                                multilabel)

  return counts


@functools.lru_cache(maxsize=32)
def jitted_step(the_plan: Plan, multilabel: bool):
  """(part params, evaluators' params, batch, stacked scenario arrays,
  ranks) -> {name: counts with a leading scenario axis}; compiled once per
  plan and kept (validation re-evaluates one model every few hundred
  steps)."""

  def step(part_params, eval_params, batch, scenario_arrays, ranks):
    pieces = [fn(part_params[i], batch) for fn, i in the_plan.parts]
    out = {}
    for (name, assemble, mapping), params in zip(the_plan.evaluators,
                                                 eval_params):
      own = {piece: pieces[j] for piece, j in mapping}
      out[name] = jax.vmap(_per_scenario(assemble, params, own, batch, ranks,
                                         multilabel))(scenario_arrays)
    return out

  return jax.jit(step)


def stack(arrays: list[dict]) -> dict:
  """Scenario arrays (``scenarios.scenario_arrays``) stacked on a leading
  axis, as ``jitted_step`` takes them."""
  return jax.tree.map(lambda *xs: np.stack(xs), *arrays)


def scenario_counts(counts, k: int):
  """The counts of the ``k``-th stacked scenario."""
  return jax.tree.map(lambda x: x[k], counts)
