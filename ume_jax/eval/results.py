"""Pure assembly of the results: the ``ume_mma`` choice, the ceilings, and
over several seeds the aggregates, paired differences and the paper's
claims judged on them.

``ume_mma`` is UME or MMA, whichever scores best on the *validation* split
averaged over the distinct missing-modality scenarios (a modality missing at
rate 1 is ``missing:<m>``, counted once); the test numbers reported for it
are the chosen method's. ``ume_umt`` is UME or UMT by our reading of Du et
al.'s (ICML'23) rule: if the uni-modal ensemble beats naive joint training
(``late_fusion``) on validation with every modality present, cross-modal
interaction matters little and UME is used, else UMT. The ceiling of a
scenario with modalities missing is the best uni-modal *test* score among
the modalities that remain (the paper's I(X_present; Y) bound, estimated).
"""
from typing import Mapping, Sequence

import numpy as np

from ume_jax.eval import robustness, statistics
from ume_jax.missing import scenarios as scenarios_lib

Table = Mapping[str, Mapping[str, Mapping[str, float]]]


def choose_ume_mma(validation: Table, metric: str,
                   scenario_names: Sequence[str],
                   missing: Sequence[str]) -> dict:
  """UME or MMA by the mean validation ``metric`` over ``missing``."""
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


# Du et al.'s rule compares the two ways of using every modality: judged
# where every modality is present, the only case with interaction to learn.
UME_UMT_SCENARIOS = ("full",)


def choose_ume_umt(validation: Table, metric: str,
                   scenarios: Sequence[str] = UME_UMT_SCENARIOS
                   ) -> dict | None:
  """UME if its mean validation ``metric`` over ``scenarios`` is above
  ``late_fusion``'s, else UMT; None unless ``umt`` and ``late_fusion``
  were both trained (the rule has nothing to choose or no baseline)."""
  if not {"umt", "late_fusion"} <= set(validation):
    return None
  scores = {m: float(np.mean([validation[m][s][metric] for s in scenarios]))
            for m in ("ume", "late_fusion")}
  # A tie is no evidence that the ensemble suffices: UMT, as Du et al.
  # read it (UME only where it beats joint training).
  chosen = "ume" if scores["ume"] > scores["late_fusion"] else "umt"
  verb = "beats" if chosen == "ume" else "does not beat"
  return {
      "chosen": chosen,
      "rule": "ume if ume beats late_fusion on validation, else umt (our"
              " reading of Du et al., ICML'23)",
      "validation": {"split": "validation", "metric": metric,
                     "scenarios": list(scenarios), "mean": scores},
      "reason": (f"ume {verb} late_fusion in mean validation {metric} over"
                 f" {', '.join(scenarios)} ({scores['ume']:.4f} vs"
                 f" {scores['late_fusion']:.4f})"),
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
             validation: Table, test: Table,
             test_size: int | None = None) -> dict:
  choice = choose_ume_mma(
      validation, primary, [s.name for s in scenarios],
      [s.name for s in scenarios_lib.distinct_missing(scenarios, modalities)])
  methods = {m: dict(v) for m, v in test.items()}
  methods["ume_mma"] = dict(test[choice["chosen"]])
  umt_choice = choose_ume_umt(validation, primary)
  if umt_choice:
    methods["ume_umt"] = dict(test[umt_choice["chosen"]])
  return {
      "dataset": dataset_name,
      "metrics": list(metric_names),
      "primary_metric": primary,
      "split": "test",
      "methods": methods,
      "ume_mma_choice": choice,
      **({"ume_umt_choice": umt_choice} if umt_choice else {}),
      "ceiling": ceilings(test, primary, modalities, scenarios),
      "scenarios": [s.describe(modalities, test_size) for s in scenarios],
      "validation": {m: dict(v) for m, v in validation.items()},
  }


def with_robustness(results: dict) -> dict:
  """``results`` (one seed's) with ``robustness``: MultiBench's summaries of
  every method's test curves (``robustness.py``)."""
  return {**results, "robustness": robustness.summaries(
      results["methods"], results["scenarios"], results["primary_metric"])}


def _over_seeds(runs: Sequence[dict], value) -> dict:
  return statistics.summary([float(value(r)) for r in runs])


def _differences(runs, metric, scenario_names, a, b) -> dict:
  """Per scenario, the summary of ``a - b`` paired by seed."""
  return {s: _over_seeds(runs, lambda r, s=s: r["methods"][a][s][metric]
                         - r["methods"][b][s][metric])
          for s in scenario_names}


def _claim(text: str, diffs: Mapping[str, dict], threshold: float) -> dict:
  """A claim over several scenarios: holds if it holds on each, fails if it
  fails on any, else undecided."""
  each = {s: statistics.verdict(d, threshold) for s, d in diffs.items()}
  words = [v.split(" ")[0] for v in each.values()]
  overall = ("holds" if all(w == "holds" for w in words)
             else "fails" if "fails" in words else "undecided")
  if any("single run" in v for v in each.values()):
    overall += " (single run)"
  return {"claim": text, "verdict": overall, "threshold": threshold,
          "per_scenario": {s: {"verdict": each[s], **d}
                           for s, d in diffs.items()}}


def claims(runs: Sequence[dict]) -> list[dict]:
  """The paper's claims, judged on paired per-seed differences of the
  primary metric (fractions: 0.015 is 1.5 points)."""
  first = runs[0]
  metric = first["primary_metric"]
  structure = first["scenarios"]
  ceiling = list(first["ceiling"])
  distinct = [s["name"] for s in structure
              if s["name"] != "full" and s["same_as"] is None]
  single = [s["name"] for s in structure
            if s["missing_type"] is None and len(s["absent"]) == 1]
  unimodal = [m for m in first["methods"] if m.startswith("unimodal:")]
  out = [_claim(
      "ume_mma is within 1.5 points of the ceiling when modalities are"
      " missing", {s: _over_seeds(
          runs, lambda r, s=s: r["methods"]["ume_mma"][s][metric]
          - r["ceiling"][s]) for s in ceiling}, -0.015),
         _claim(
      "ume_mma with every modality present beats the best uni-modal model",
      {"full": _over_seeds(
          runs, lambda r: r["methods"]["ume_mma"]["full"][metric]
          - max(r["methods"][u]["full"][metric] for u in unimodal))}, 0.0)]
  if {"mma", "late_fusion"} <= set(first["methods"]):
    out.append(_claim("mma beats late_fusion on every missing scenario",
                      _differences(runs, metric, distinct, "mma",
                                   "late_fusion"), 0.0))
  if {"late_fusion_pretrained", "late_fusion"} <= set(first["methods"]):
    out.append(_claim(
        "uni-modal pre-training beats joint training of the same encoders"
        " (late_fusion_pretrained vs late_fusion)",
        _differences(runs, metric, ["full"] + single,
                     "late_fusion_pretrained", "late_fusion"), 0.0))
  return out


def _keys(runs: Sequence[dict], table: str, method: str,
          scenario: str) -> list[str]:
  """The metrics of one cell that every run has, in the first run's order:
  the headline ``metrics`` and the rest (``ece``, ``nll``)."""
  return [k for k in runs[0][table][method][scenario]
          if all(k in r[table][method][scenario] for r in runs)]


def combine(runs: Sequence[dict], seeds: Sequence[int]) -> dict:
  """One seed's results per run -> the run's results: today's keys hold
  the means over seeds, ``aggregate`` the summaries (of every metric the
  runs report: the headline ``metrics``, ``ece``, ``nll``),
  ``paired_differences`` ``ume_mma`` minus every other method per seed,
  ``claims`` the verdicts, ``per_seed`` each seed's own results."""
  first = runs[0]
  metric = first["primary_metric"]
  names = [s["name"] for s in first["scenarios"]]
  aggregate = {m: {s: {k: _over_seeds(runs, lambda r, m=m, s=s, k=k:
                                      r["methods"][m][s][k])
                       for k in _keys(runs, "methods", m, s)}
                   for s in names}
               for m in first["methods"]}
  means = lambda table: {m: {s: {k: v["mean"] for k, v in row.items()}
                             for s, row in by_s.items()}
                         for m, by_s in table.items()}
  chosen = [r["ume_mma_choice"]["chosen"] for r in runs]
  choice = dict(first["ume_mma_choice"]) if len(runs) == 1 else {
      "chosen": "per seed", "per_seed": chosen,
      "reason": f"chose mma in {chosen.count('mma')} of {len(runs)} seeds"
                " (each seed: the higher mean validation " + metric
                + " over the distinct missing-modality scenarios)"}
  return {
      **{k: first[k] for k in ("dataset", "metrics", "primary_metric",
                               "split", "scenarios", "protocol", "code")
         if k in first},
      "provenance": (first.get("provenance") if len(runs) == 1 else
                     {"per_seed": [r.get("provenance") for r in runs]}),
      "methods": means(aggregate),
      "ume_mma_choice": choice,
      **_umt_choice_over_seeds(runs),
      # Per seed (each seed's validation makes its own choices).
      **{k: (first[k] if len(runs) == 1
             else {"per_seed": [r.get(k) for r in runs]})
         for k in ("best_per_pattern_choice", "temperatures") if k in first},
      "ceiling": {s: _over_seeds(runs, lambda r, s=s: r["ceiling"][s])["mean"]
                  for s in first["ceiling"]},
      "validation": means({m: {s: {k: _over_seeds(
          runs, lambda r, m=m, s=s, k=k: r["validation"][m][s][k])
                                   for k in _keys(runs, "validation", m, s)}
                               for s in names}
                           for m in first["validation"]}),
      "seeds": list(seeds),
      "aggregate": aggregate,
      "paired_differences": {
          b: _differences(runs, metric, names, "ume_mma", b)
          for b in first["methods"] if b != "ume_mma"},
      "claims": claims(runs),
      **_robustness_over_seeds(runs),
      "per_seed": list(runs),
  }


def _umt_choice_over_seeds(runs: Sequence[dict]) -> dict:
  """``ume_umt_choice`` of the runs: the one run's, or each seed's."""
  if "ume_umt_choice" not in runs[0]:
    return {}
  if len(runs) == 1:
    return {"ume_umt_choice": dict(runs[0]["ume_umt_choice"])}
  chosen = [r["ume_umt_choice"]["chosen"] for r in runs]
  return {"ume_umt_choice": {
      "chosen": "per seed", "per_seed": chosen,
      "reason": f"chose umt in {chosen.count('umt')} of {len(runs)} seeds"
                " (each seed: ume if it beats late_fusion on validation)"}}


def _robustness_over_seeds(runs: Sequence[dict]) -> dict:
  """``robustness`` (means over seeds) and ``robustness_aggregate`` (their
  summaries); nothing where the runs have no rate sweep."""
  first = runs[0].get("robustness")
  if not first:
    return {}
  aggregate = {m: {t: {k: (None if v is None else _over_seeds(
      runs, lambda r, m=m, t=t, k=k: r["robustness"][m][t][k]))
                       for k, v in kinds.items()}
                   for t, kinds in row.items()}
               for m, row in first.items()}
  return {"robustness": {m: {t: {k: None if v is None else v["mean"]
                                 for k, v in kinds.items()}
                             for t, kinds in row.items()}
                         for m, row in aggregate.items()},
          "robustness_aggregate": aggregate}
