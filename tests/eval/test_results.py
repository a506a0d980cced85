"""The validation choices of ume_jax/eval/results.py: ``ume_umt`` (Du et
al.'s rule as we read it), in one seed's results, over seeds and in
results.md."""
import pytest

from ume_jax.eval import report, results
from ume_jax.missing import scenarios as scenarios_lib

MODS = ("image", "audio")


def _validation(ume, late_fusion, umt=0.5):
  """``full`` validation scores; the missing scenarios favour the other
  side, so only ``full`` can decide."""
  row = lambda full, missing: {"full": {"accuracy": full},
                               "missing:image": {"accuracy": missing}}
  return {"ume": row(ume, 1.0 - ume), "late_fusion": row(late_fusion,
                                                         1.0 - late_fusion),
          "umt": row(umt, umt)}


@pytest.mark.parametrize("ume,late_fusion,chosen", [
    (0.71, 0.70, "ume"),
    (0.70, 0.71, "umt"),
    (0.70, 0.70, "umt"),   # only beating joint training picks the ensemble
])
def test_ume_when_it_beats_late_fusion_on_validation_else_umt(
    ume, late_fusion, chosen):
  c = results.choose_ume_umt(_validation(ume, late_fusion), "accuracy")
  assert c["chosen"] == chosen
  assert c["validation"]["mean"] == {"ume": ume, "late_fusion": late_fusion}
  assert c["validation"]["scenarios"] == ["full"]
  assert f"({ume:.4f} vs {late_fusion:.4f})" in c["reason"]


def test_no_choice_without_umt_or_its_baseline():
  v = _validation(0.7, 0.6)
  assert results.choose_ume_umt(
      {k: x for k, x in v.items() if k != "umt"}, "accuracy") is None
  assert results.choose_ume_umt(
      {k: x for k, x in v.items() if k != "late_fusion"}, "accuracy") is None


def _assembled(ume_full):
  scenarios = scenarios_lib.build_scenarios(MODS, ())
  scores = {"unimodal:image": 0.6, "unimodal:audio": 0.5, "mma": 0.65,
            "late_fusion": 0.7, "umt": 0.72, "ume": ume_full}
  table = {m: {s.name: {"accuracy": v - 0.1 * s.drops_modalities}
               for s in scenarios} for m, v in scores.items()}
  return results.assemble("toy", ["accuracy"], "accuracy", MODS, scenarios,
                          table, table)


def test_ume_umt_reports_the_chosen_methods_numbers_and_why(tmp_path):
  r = _assembled(ume_full=0.69)
  assert r["ume_umt_choice"]["chosen"] == "umt"
  assert r["methods"]["ume_umt"] == r["methods"]["umt"]
  assert _assembled(ume_full=0.75)["methods"]["ume_umt"] == \
      _assembled(ume_full=0.75)["methods"]["ume"]
  lines = report.write_results(r, str(tmp_path)).splitlines()
  line = next(l for l in lines if l.startswith("ume_umt = "))
  assert line.startswith("ume_umt = **umt**") and "0.6900 vs 0.7000" in line
  start = lines.index("## Ablation ladder (each row adds one ingredient)")
  rows = [l.split(" | ")[0][2:] for l in lines[start + 4:start + 12]
          if l.startswith("| ")]
  assert rows == ["late_fusion", "mma", "ume", "ume_mma", "umt", "ume_umt"]


def test_over_seeds_the_choice_is_each_seeds():
  runs = [_assembled(0.69), _assembled(0.75), _assembled(0.60)]
  combined = results.combine(runs, [0, 1, 2])
  c = combined["ume_umt_choice"]
  assert c["per_seed"] == ["umt", "ume", "umt"]
  assert c["reason"].startswith("chose umt in 2 of 3 seeds")
  assert combined["methods"]["ume_umt"]["full"]["accuracy"] == \
      pytest.approx((0.72 + 0.75 + 0.72) / 3)
  one = results.combine(runs[:1], [0])
  assert one["ume_umt_choice"] == runs[0]["ume_umt_choice"]
  assert "ume_umt_choice" not in results.combine(
      [_without_umt(r) for r in runs[:1]], [0])


def _without_umt(r):
  return {k: v for k, v in r.items() if k != "ume_umt_choice"}
