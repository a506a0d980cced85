"""``best_per_pattern``: per presence pattern, the candidate that is best on
validation, and the model that applies that choice example by example.

For each pattern of present modalities (``full``, each fixed
``missing:<subset>`` scenario), the candidates are ``ume``, ``mma`` (when
trained) and the best uni-modal model among the present modalities (best
on validation with its modality present); the one with the highest
validation primary metric under that pattern's scenario is chosen (ties:
``ume``, then the uni-modal model, then ``mma`` - the less trained first).
On any scenario, each example is then scored by the choice for its own
pattern, so mixed-rate scenarios are handled example by example. It is a
method of its own in ``results.json``: the paper's claims are still judged
on ``ume_mma``. The validation split makes this choice besides the others
it serves (best checkpoints, temperatures, the UME/MMA choice); the test
split makes none.
"""
from typing import Callable, Mapping, Sequence

import jax.numpy as jnp
import numpy as np

from ume_jax.eval import decomposed
from ume_jax.missing import scenarios as scenarios_lib

NAME = "best_per_pattern"
Table = Mapping[str, Mapping[str, Mapping[str, float]]]


def pattern_code(present: Sequence[bool]) -> int:
  """The pattern's index: bit i set when modality i is present."""
  return int(sum(1 << i for i, p in enumerate(present) if p))


def candidates(validation: Table, metric: str, modalities: Sequence[str],
               present: Sequence[bool]) -> list[str]:
  """``ume``, the best present uni-modal model, ``mma``: in tie order."""
  have = [m for m, p in zip(modalities, present) if p]
  best_uni = max(have, key=lambda m: validation[f"unimodal:{m}"]["full"][
      metric])
  out = ["ume", f"unimodal:{best_uni}"]
  return out + (["mma"] if "mma" in validation else [])


def choose(validation: Table, metric: str, modalities: Sequence[str],
           scenarios: Sequence[scenarios_lib.Scenario]) -> dict:
  """{scenario name: {"present", "chosen", "validation"}} for the fixed
  scenarios among ``scenarios`` (one per presence pattern)."""
  out = {}
  for s in scenarios:
    if s.has_rate:
      continue
    present = list(s.fixed_present)
    scores = {c: validation[c][s.name][metric]
              for c in candidates(validation, metric, modalities, present)}
    # max keeps the first of equal scores: the tie order above.
    chosen = max(scores, key=scores.get)
    out[s.name] = {"present": present, "chosen": chosen,
                   "validation": scores}
  return out


def composite(choice: Mapping[str, dict], members: Mapping[str, Callable],
              modalities: Sequence[str]) -> tuple[Callable, list[str]]:
  """(eval logits applying ``choice`` per example, the member names it
  needs); ``members`` maps names to eval-logits functions, and the
  composite's params are ``{member name: its params}``. When every member
  needed is ``Decomposed``, so is the composite (its pieces: the members')."""
  names = sorted({c["chosen"] for c in choice.values()})
  table = np.zeros(1 << len(modalities), np.int32)
  for c in choice.values():
    table[pattern_code(c["present"])] = names.index(c["chosen"])
  table = jnp.asarray(table)
  weights = jnp.asarray([1 << i for i in range(len(modalities))], jnp.int32)

  def pick(member_logits, present):
    stacked = jnp.stack(member_logits)                            # (K, B, C)
    row = table[(present.astype(jnp.int32) * weights).sum(-1)]    # (B,)
    return jnp.take_along_axis(stacked, row[None, :, None], axis=0)[0]

  def logits(params, batch, present):
    return pick([members[n](params[n], batch, present) for n in names],
                present)

  if not all(isinstance(members[n], decomposed.Decomposed) for n in names):
    return logits, names

  def parts(params):
    return {(n, piece): part for n in names
            for piece, part in members[n].parts(params[n]).items()}

  def assemble(params, pieces, present):
    return pick([members[n].assemble(
        params[n], {piece: v for (owner, piece), v in pieces.items()
                    if owner == n}, present) for n in names], present)

  return decomposed.Decomposed(logits, parts, assemble), names
