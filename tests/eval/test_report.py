"""Results assembly and files (ume_jax/eval/results.py, report.py): tables
and plots read the scenarios' structure, not their names."""
import os

from ume_jax.eval import report, results
from ume_jax.missing import scenarios as scenarios_lib

MODS = ("image", "title", "keywords")


def _results():
  scenarios = scenarios_lib.build_scenarios(MODS, (0.5, 1.0))
  methods = ["unimodal:image", "unimodal:title", "unimodal:keywords", "ume",
             "mma"]
  # A score per method and scenario that tells them apart: method i scores
  # (i + 1) / 10 + (scenario j) / 1000.
  table = {m: {s.name: {"accuracy": (i + 1) / 10 + j / 1000}
               for j, s in enumerate(scenarios)}
           for i, m in enumerate(methods)}
  return results.assemble("toy", ["accuracy"], "accuracy", MODS, scenarios,
                          validation=table, test=table), scenarios


def test_scenarios_are_recorded_with_their_structure():
  r, scenarios = _results()
  by_name = {s["name"]: s for s in r["scenarios"]}
  assert len(by_name) == len(scenarios) == 7 + 8
  assert by_name["missing:title+keywords"] == {
      "name": "missing:title+keywords", "absent": ["title", "keywords"],
      "missing_type": None, "rate": 0.0, "same_as": None}
  assert by_name["missing_rate:keywords:0.5"]["missing_type"] == "keywords"
  assert by_name["missing_rate:keywords:1"]["same_as"] == "missing:keywords"
  # Ceilings for every scenario with modalities absent, none for rates.
  assert set(r["ceiling"]) == {s.name for s in scenarios
                               if s.drops_modalities}
  # Only the image remains: the ceiling is unimodal:image's full score.
  assert r["ceiling"]["missing:title+keywords"] == 0.1


def test_markdown_table_columns_come_from_the_structure(tmp_path):
  r, _ = _results()
  table = report.write_results(r, str(tmp_path))
  lines = table.splitlines()
  fixed_header = next(l for l in lines if l.startswith("| method | full"))
  assert fixed_header.count("|") == 7 + 2
  rate_header = next(l for l in lines if "image:0.5" in l)
  assert rate_header == ("| method | image:0.5 | image:1 | title:0.5 |"
                         " title:1 | keywords:0.5 | keywords:1 | mixed:0.5 |"
                         " mixed:1 |")
  # ume_mma = mma here (higher validation mean); its row repeats mma's.
  mma = [l for l in lines if l.startswith("| mma |")]
  ume_mma = [l for l in lines if l.startswith("| ume_mma |")]
  assert [l.split("|")[2:] for l in mma] == [l.split("|")[2:] for l in ume_mma]
  # mma's rows: scenarios 0-6 in the first table, 7-12 in the rate table.
  assert mma[0] == "| mma | " + " | ".join(
      f"{50 + j / 10:.2f}" for j in range(7)) + " |"
  assert mma[1].startswith("| mma | 50.70 | 50.80 |")
  for name in ("results.json", "results.md", "robustness.png"):
    assert os.path.getsize(tmp_path / name) > 0
