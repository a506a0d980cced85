"""The missing-modality evaluation protocol: which scenarios exist, by name.

- ``full``: every modality present;
- ``missing:<m>``: modality m absent for every example; with M >= 3 modalities
  also ``missing:<a>+<b>...`` so that every non-empty subset of modalities is
  evaluated as the present set;
- ``missing_rate:<m>:<r>``: m absent for a fraction r of examples.
"""
import dataclasses
import itertools
from typing import Sequence

import jax.numpy as jnp
import numpy as np

from ume_jax.missing import masking


@dataclasses.dataclass(frozen=True)
class Scenario:
  name: str
  always_absent: tuple[bool, ...]
  rate_modality: int = -1
  rate: float = 0.0

  @property
  def fixed_present(self) -> tuple[bool, ...]:
    """Modalities present for every example (all but the always-absent)."""
    return tuple(not a for a in self.always_absent)

  @property
  def has_rate(self) -> bool:
    """True for ``missing_rate:`` scenarios (a fraction of examples)."""
    return self.rate_modality >= 0

  @property
  def drops_modalities(self) -> bool:
    """True for ``missing:`` scenarios: some modalities absent for all."""
    return any(self.always_absent)

  def describe(self, modalities: Sequence[str]) -> dict:
    """The scenario's structure, for results files and their readers."""
    return {"name": self.name,
            "absent": [m for m, a in zip(modalities, self.always_absent) if a],
            "rate_modality": (modalities[self.rate_modality] if self.has_rate
                              else None),
            "rate": self.rate}


def build_scenarios(modalities: Sequence[str],
                    missing_rates: Sequence[float]) -> list[Scenario]:
  """All scenarios for ``modalities``, in a stable, readable order."""
  num = len(modalities)
  scenarios = [Scenario("full", (False,) * num)]
  for size in range(1, num):
    for absent in itertools.combinations(range(num), size):
      name = "missing:" + "+".join(modalities[i] for i in absent)
      scenarios.append(
          Scenario(name, tuple(i in absent for i in range(num))))
  for i, m in enumerate(modalities):
    for r in missing_rates:
      if not 0.0 < float(r) <= 1.0:
        raise ValueError(f"eval.missing_rates entries must be in (0, 1], got"
                         f" {r}")
      scenarios.append(
          Scenario(f"missing_rate:{m}:{float(r):g}", (False,) * num, i,
                   float(r)))
  return scenarios


def single_missing(scenarios: Sequence[Scenario]) -> list[Scenario]:
  """The ``missing:<m>`` scenarios with exactly one modality absent."""
  return [s for s in scenarios
          if not s.has_rate and sum(s.always_absent) == 1]


def scenario_arrays(scenario: Scenario) -> dict[str, np.ndarray]:
  """The scenario as arrays, so a jitted step takes it as a traced argument."""
  return {"always_absent": np.array(scenario.always_absent, np.bool_),
          "rate_modality": np.int32(scenario.rate_modality),
          "rate": np.float32(scenario.rate)}


def present_mask(arrays: dict, index: jnp.ndarray, seed: int) -> jnp.ndarray:
  """(B, M) presence mask of a scenario for examples ``index`` (traceable).

  Masks at rate 0.3 are a subset of those at 0.5 (``keys.evaluation_keys``):
  curves over rates are monotone in the missing set, as a reader of a
  robustness plot expects.
  """
  return masking.scenario_present(seed, index, arrays["always_absent"],
                                  arrays["rate_modality"], arrays["rate"])
