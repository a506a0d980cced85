"""Pure assembly of the results: the ``ume_mma`` choice and the ceilings.

``ume_mma`` is UME or MMA, whichever scores best on the *validation* split
averaged over the missing-modality scenarios (everything but ``full``); the
test numbers reported for it are the chosen method's. The ceiling of a
scenario with modalities missing is the best uni-modal *test* score among the
modalities that remain (the paper's I(X_present; Y) bound, estimated).
"""
from typing import Mapping, Sequence

import numpy as np

from ume_jax.missing import scenarios as scenarios_lib

Table = Mapping[str, Mapping[str, Mapping[str, float]]]


def choose_ume_mma(validation: Table, metric: str,
                   scenario_names: Sequence[str]) -> dict:
  missing = [s for s in scenario_names if s != "full"]
  if "mma" not in validation:
    return {"chosen": "ume", "validation": {}, "reason": "mma was not trained"
            " (config.methods), so ume_mma is ume"}
  averages = {m: float(np.mean([validation[m][s][metric] for s in missing]))
              for m in ("ume", "mma")}
  # Ties go to UME: it needs no further training.
  chosen = "mma" if averages["mma"] > averages["ume"] else "ume"
  return {
      "chosen": chosen,
      "validation": {"split": "validation", "metric": metric,
                     "scenarios": missing, "mean": averages,
                     "per_scenario": {m: {s: validation[m][s][metric]
                                          for s in scenario_names}
                                      for m in ("ume", "mma")}},
      "reason": (f"{chosen} has the higher mean validation {metric} over"
                 f" {len(missing)} missing-modality scenarios"
                 f" ({averages[chosen]:.4f} vs"
                 f" {averages['mma' if chosen == 'ume' else 'ume']:.4f})"),
  }


def ceilings(test: Table, metric: str, modalities: Sequence[str],
             scenarios: Sequence[scenarios_lib.Scenario]) -> dict[str, float]:
  out = {}
  for s in scenarios:
    if s.drops_modalities:
      remaining = [m for m, p in zip(modalities, s.fixed_present) if p]
      out[s.name] = max(test[f"unimodal:{m}"]["full"][metric]
                        for m in remaining)
  return out


def assemble(dataset_name: str, metric_names: Sequence[str], primary: str,
             modalities: Sequence[str],
             scenarios: Sequence[scenarios_lib.Scenario],
             validation: Table, test: Table) -> dict:
  choice = choose_ume_mma(validation, primary, [s.name for s in scenarios])
  methods = {m: dict(v) for m, v in test.items()}
  methods["ume_mma"] = dict(test[choice["chosen"]])
  return {
      "dataset": dataset_name,
      "metrics": list(metric_names),
      "primary_metric": primary,
      "split": "test",
      "methods": methods,
      "ume_mma_choice": choice,
      "ceiling": ceilings(test, primary, modalities, scenarios),
      "scenarios": [s.describe(modalities) for s in scenarios],
      "validation": {m: dict(v) for m, v in validation.items()},
  }
