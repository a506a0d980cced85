"""The missing-modality evaluation protocol: which scenarios exist.

- ``full``: every modality present;
- ``missing:<m>``: modality m absent for every example; with M >= 3 modalities
  also ``missing:<a>+<b>...`` so that every non-empty subset of modalities is
  evaluated as the present set;
- ``missing_rate:<type>:<eta>``: the field's protocol (``protocol.py``): for
  a modality type, exactly round(eta N) examples of the split lack it; for
  ``both`` / ``mixed``, round(eta N) examples each lack one modality, spread
  evenly.

Scenarios are structured values; their names are labels only. Masks depend
on ``eval.mask_seed``, the type and each example's index in its split, so
every method, batch size and process count sees the same missing
modalities, and the sets at a smaller eta are subsets of those at a larger
one.
"""
import dataclasses
import itertools
from typing import Sequence

import jax.numpy as jnp
import numpy as np

from ume_jax.missing import protocol


@dataclasses.dataclass(frozen=True)
class Scenario:
  name: str
  always_absent: tuple[bool, ...]
  missing_type: str = ""                 # "" (none), a modality, both, mixed
  rate: float = 0.0                      # eta: the fraction missing
  type_number: int = 0                   # protocol.type_id of missing_type
  type_modalities: tuple[int, ...] = ()  # what the missing examples lack

  @property
  def fixed_present(self) -> tuple[bool, ...]:
    """Modalities present for every example (all but the always-absent)."""
    return tuple(not a for a in self.always_absent)

  @property
  def has_rate(self) -> bool:
    """True for ``missing_rate:`` scenarios (a fraction of examples)."""
    return bool(self.missing_type)

  @property
  def drops_modalities(self) -> bool:
    """True for ``missing:`` scenarios: some modalities absent for all."""
    return any(self.always_absent)

  def same_as(self, modalities: Sequence[str]) -> str | None:
    """The fixed scenario this one equals (a modality type at eta = 1 is
    ``missing:<m>``), or None: such a pair is one scenario, counted once."""
    if self.has_rate and self.rate == 1.0 and len(self.type_modalities) == 1:
      return f"missing:{modalities[self.type_modalities[0]]}"
    return None

  def describe(self, modalities: Sequence[str],
               num_examples: int | None = None) -> dict:
    """The scenario's structure, for results files and their readers; with
    the split's size, the share of its examples that have each modality."""
    out = {"name": self.name,
           "absent": [m for m, a in zip(modalities, self.always_absent) if a],
           "missing_type": self.missing_type or None,
           "rate": self.rate, "same_as": self.same_as(modalities)}
    if num_examples:
      fractions = (protocol.present_fractions(
          self.missing_type, self.rate, modalities, num_examples)
                   if self.has_rate else {m: 1.0 for m in modalities})
      out["test_present_fraction"] = {
          m: 0.0 if a else fractions[m]
          for m, a in zip(modalities, self.always_absent)}
    return out


def build_scenarios(modalities: Sequence[str],
                    missing_rates: Sequence[float],
                    missing_types: Sequence[str] = ()) -> list[Scenario]:
  """All scenarios for ``modalities``, in a stable, readable order.

  ``missing_types`` () means every modality and the spread type
  (``both`` / ``mixed``).
  """
  num = len(modalities)
  scenarios = [Scenario("full", (False,) * num)]
  for size in range(1, num):
    for absent in itertools.combinations(range(num), size):
      name = "missing:" + "+".join(modalities[i] for i in absent)
      scenarios.append(
          Scenario(name, tuple(i in absent for i in range(num))))
  types = list(missing_types) or list(modalities) + ["both"]
  for t in dict.fromkeys(protocol.canonical_type(t, modalities)
                         for t in types):
    for r in missing_rates:
      if not 0.0 < float(r) <= 1.0:
        raise protocol.ProtocolError(
            f"eval.missing_rates entries must be in (0, 1], got {r}")
      scenarios.append(Scenario(
          f"missing_rate:{t}:{float(r):g}", (False,) * num, t, float(r),
          protocol.type_id(t, modalities),
          protocol.type_modalities(t, modalities)))
  return scenarios


def single_missing(scenarios: Sequence[Scenario]) -> list[Scenario]:
  """The ``missing:<m>`` scenarios with exactly one modality absent."""
  return [s for s in scenarios
          if not s.has_rate and sum(s.always_absent) == 1]


def distinct_missing(scenarios: Sequence[Scenario],
                     modalities: Sequence[str]) -> list[Scenario]:
  """Every scenario with something missing, each distinct one once."""
  return [s for s in scenarios
          if s.name != "full" and s.same_as(modalities) is None]


def rank_table(mask_seed: int, num_modalities: int,
               num_examples: int) -> np.ndarray:
  """(types, N) int32: each example's rank under every missing type of a
  split (rows by ``protocol.type_id``), computed once per split."""
  return np.stack([protocol.ranks(mask_seed, t, num_examples)
                   for t in range(num_modalities + 1)])


def scenario_arrays(scenario: Scenario, num_examples: int
                    ) -> dict[str, np.ndarray]:
  """The scenario on a split of ``num_examples`` as arrays, so a jitted step
  takes it as a traced argument (one compilation serves every scenario)."""
  num = len(scenario.always_absent)
  order = np.zeros(num, np.int32)
  order[:len(scenario.type_modalities)] = scenario.type_modalities
  return {"always_absent": np.array(scenario.always_absent, np.bool_),
          "type_number": np.int32(scenario.type_number),
          "order": order,
          "cycle": np.int32(max(len(scenario.type_modalities), 1)),
          "count": np.int32(protocol.count(scenario.rate, num_examples)
                            if scenario.has_rate else 0)}


def present_mask(arrays: dict, ranks: jnp.ndarray, index: jnp.ndarray
                 ) -> jnp.ndarray:
  """(B, M) presence mask of a scenario for examples ``index`` (traceable);
  ``ranks`` is the split's ``rank_table``."""
  rank = ranks[arrays["type_number"], index]
  missing = rank < arrays["count"]
  which = arrays["order"][rank % arrays["cycle"]]
  num = arrays["always_absent"].shape[0]
  rate_absent = missing[:, None] & (
      jnp.arange(num)[None, :] == which[:, None])
  return ~(arrays["always_absent"][None, :] | rate_absent)
