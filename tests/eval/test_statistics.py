"""Seed statistics (ume_jax/eval/statistics.py) and the multi-seed results
(eval/results.combine) against a hand computation."""
import math

import pytest

from ume_jax.eval import results, statistics

# Student-t 0.975 quantiles (tables): 4 and 2 degrees of freedom.
T975 = {4: 2.7764451051977987, 2: 4.302652729911275}


def test_summary_is_mean_std_and_student_t_interval():
  values = [0.90, 0.92, 0.91, 0.95, 0.87]
  mean = sum(values) / 5
  std = math.sqrt(sum((v - mean) ** 2 for v in values) / 4)
  half = T975[4] * std / math.sqrt(5)
  s = statistics.summary(values)
  assert s["n"] == 5
  assert s["mean"] == pytest.approx(mean, abs=1e-15)
  assert s["std"] == pytest.approx(std, abs=1e-15)
  assert s["ci95"] == pytest.approx([mean - half, mean + half], abs=1e-12)
  one = statistics.summary([0.5])
  assert one == {"mean": 0.5, "std": None, "ci95": None, "n": 1}


def test_verdicts():
  assert statistics.verdict({"ci95": [0.01, 0.02], "mean": 0.015}) == "holds"
  assert statistics.verdict({"ci95": [-0.03, -0.01], "mean": -0.02}) == "fails"
  assert statistics.verdict({"ci95": [-0.01, 0.02], "mean": 0.0}) == \
      "undecided"
  assert statistics.verdict({"ci95": [-0.014, 0.0], "mean": -0.007},
                            -0.015) == "holds"
  assert statistics.verdict({"ci95": None, "mean": 0.01}) == \
      "holds (single run)"


def _run(seed_scores, chosen):
  """One seed's results for two scenarios and the five methods."""
  scen = [{"name": "full", "absent": [], "missing_type": None, "rate": 0.0,
           "same_as": None},
          {"name": "missing:a", "absent": ["a"], "missing_type": None,
           "rate": 0.0, "same_as": None}]
  methods = {m: {s: {"accuracy": v} for s, v in zip(("full", "missing:a"),
                                                    seed_scores[m])}
             for m in seed_scores}
  return {"dataset": "toy", "metrics": ["accuracy"],
          "primary_metric": "accuracy", "split": "test", "scenarios": scen,
          "methods": methods, "validation": methods,
          "ume_mma_choice": {"chosen": chosen, "reason": "r"},
          "ceiling": {"missing:a": seed_scores["unimodal:b"][0]}}


def test_combine_aggregates_pairs_and_judges_claims():
  base = {"unimodal:a": (0.80, 0.10), "unimodal:b": (0.60, 0.10),
          "late_fusion": (0.82, 0.40), "late_fusion_pretrained": (0.83, 0.55)}
  mma = [(0.85, 0.59), (0.86, 0.60), (0.84, 0.58)]
  runs = [_run(dict(base, mma=m, ume=(0.84, 0.6), ume_mma=m), "mma")
          for m in mma]
  r = results.combine(runs, [0, 1000, 2000])
  assert r["seeds"] == [0, 1000, 2000]
  full = [m[0] for m in mma]
  mean = sum(full) / 3
  std = math.sqrt(sum((v - mean) ** 2 for v in full) / 2)
  agg = r["aggregate"]["mma"]["full"]["accuracy"]
  assert agg["mean"] == pytest.approx(mean) == r["methods"]["mma"]["full"][
      "accuracy"]
  assert agg["ci95"][1] - mean == pytest.approx(T975[2] * std / math.sqrt(3))
  # Paired per seed: ume_mma - late_fusion with modality a missing.
  diff = r["paired_differences"]["late_fusion"]["missing:a"]
  assert diff["mean"] == pytest.approx(sum(m[1] for m in mma) / 3 - 0.40)
  claims = {c["claim"]: c for c in r["claims"]}
  assert len(claims) == 4
  ceiling = next(c for n, c in claims.items() if "ceiling" in n)
  # ume_mma(missing:a) - ceiling (0.60) = -0.01, 0.0, -0.02: within 1.5
  # points? The interval [-0.035, 0.015] reaches below -0.015: undecided.
  assert ceiling["verdict"] == "undecided"
  best = next(c for n, c in claims.items() if "best uni-modal" in n)
  assert best["verdict"] == "holds"      # 0.85 vs 0.80, every seed
  assert next(c for n, c in claims.items()
              if "mma beats" in n)["verdict"] == "holds"
  assert r["ume_mma_choice"]["per_seed"] == ["mma"] * 3
