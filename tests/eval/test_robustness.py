"""MultiBench's robustness summaries (ume_jax/eval/robustness.py) and the
ablation ladder in results.md (report.py)."""
import pytest

from ume_jax.eval import report, results, robustness
from ume_jax.missing import scenarios as scenarios_lib

MODS = ("image", "audio")
RATES = (0.25, 0.5, 1.0)


def test_relative_is_the_area_under_the_curve():
  assert robustness.relative([0, 0.5, 1], [0.8, 0.8, 0.8]) == pytest.approx(0.8)
  assert robustness.relative([0, 0.25, 1], [1.0, 0.75, 0.0]) == \
      pytest.approx(0.5)


def test_effective_is_zero_for_the_reference_at_any_height():
  ref = [0.9, 0.7, 0.5]
  assert robustness.effective(ref, ref) == 0
  assert robustness.effective([v - 0.3 for v in ref], ref) == \
      pytest.approx(0.0, abs=1e-12)
  # Starts at 0.9 like the reference, loses half as much at each point.
  assert robustness.effective([0.9, 0.8, 0.7], ref) == pytest.approx(0.3)


def _table(drop):
  """Per method, accuracy 0.9 at full falling by drop[m] per unit rate."""
  scenarios = scenarios_lib.build_scenarios(MODS, RATES)
  return {m: {s.name: {"accuracy": 0.9 - d * (s.rate if s.has_rate else
                                              0.5 * any(s.always_absent))}
              for s in scenarios}
          for m, d in drop.items()}, scenarios


def _assembled(drop, shift=0.0):
  table, scenarios = _table({"unimodal:image": 0.6, "unimodal:audio": 0.8,
                             **drop})
  for m in table:
    for v in table[m].values():
      v["accuracy"] += shift if m == "mma" else 0.0
  r = results.assemble("toy", ["accuracy"], "accuracy", MODS, scenarios,
                       table, table)
  return results.with_robustness(r)


def test_summaries_per_type_and_mean():
  r = _assembled({"late_fusion": 0.4, "mma": 0.2, "ume": 0.2})
  rob = r["robustness"]
  assert set(rob["mma"]) == {"image", "audio", "both", "mean"}
  # Area of a line from 0.9 down by 0.2 at rate 1: 0.8.
  assert rob["mma"]["image"]["relative"] == pytest.approx(0.8)
  # Against late fusion (0.4 per unit): 0.2 x (0.25 + 0.5 + 1) ahead.
  assert rob["mma"]["image"]["effective"] == pytest.approx(0.35)
  assert rob["late_fusion"]["mean"]["effective"] == pytest.approx(0.0)
  no_reference = _assembled({"mma": 0.2, "ume": 0.2})["robustness"]
  assert no_reference["mma"]["mean"]["effective"] is None


def test_over_seeds_and_the_ablation_ladder_in_results_md(tmp_path):
  runs = [_assembled({"late_fusion": 0.4, "moddrop": 0.3, "mma": 0.2,
                      "ume": 0.2}, shift=s) for s in (0.01, 0.02, 0.03)]
  combined = results.combine(runs, [0, 1, 2])
  agg = combined["robustness_aggregate"]["mma"]["image"]["relative"]
  assert agg["n"] == 3 and agg["mean"] == pytest.approx(0.82)
  assert combined["robustness"]["mma"]["image"]["relative"] == \
      pytest.approx(0.82)
  lines = report.write_results(combined, str(tmp_path)).splitlines()
  start = lines.index("## Ablation ladder (each row adds one ingredient)")
  rows = [l for l in lines[start:start + 12] if l.startswith("| ")][1:]
  assert [r.split(" | ")[0][2:] for r in rows] == [
      "late_fusion", "moddrop", "mma", "ume", "ume_mma"]
  # ume_mma (= mma here, the higher validation score) beats late fusion
  # with the image missing; ties nothing it is.
  late = rows[0].split(" | ")[-1]
  assert "wins" in late.split(";")[1]
  assert "ume_mma − method" in lines[start + 2]
