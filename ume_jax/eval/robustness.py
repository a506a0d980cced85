"""MultiBench's robustness summaries over the missing-rate sweep.

For each missing type (a modality, ``both`` / ``mixed``) a method's curve is
its primary metric against the test-time missing rate eta, with eta = 0 the
``full`` scenario:

- **relative robustness**: the area under that curve over eta in [0, 1]
  (trapezoids; MultiBench's ``relative_robustness_helper`` with its grid of
  0.1) - how much of its score a method keeps as data goes missing;
- **effective robustness**: the sum over the sweep of the method's score
  minus the reference's (``late_fusion``, MultiBench's LF) shifted to start
  from the method's own ``full`` score - how much better it degrades than
  late fusion would from where it starts.

MultiBench then min-max normalises each across the methods it compares;
we report the raw values (a normalisation depends on which methods run).
``mean`` averages each summary over the missing types.
"""
from typing import Mapping, Sequence

import numpy as np

REFERENCE = "late_fusion"
Table = Mapping[str, Mapping[str, Mapping[str, float]]]


def curves(scenarios: Sequence[dict]) -> dict[str, list[tuple[float, str]]]:
  """Missing type -> [(eta, scenario name)] from eta = 0 (``full``), over
  the structured scenarios of a results file (``Scenario.describe``)."""
  out: dict[str, list[tuple[float, str]]] = {}
  for s in scenarios:
    if s.get("missing_type"):
      out.setdefault(s["missing_type"], [(0.0, "full")]).append(
          (float(s["rate"]), s["name"]))
  return {t: sorted(points) for t, points in out.items()}


def relative(rates: Sequence[float], scores: Sequence[float]) -> float:
  """Area under ``scores`` against ``rates`` (trapezoids)."""
  r, v = np.asarray(rates, float), np.asarray(scores, float)
  return float(np.sum((v[1:] + v[:-1]) * np.diff(r) / 2))


def effective(scores: Sequence[float], reference: Sequence[float]) -> float:
  """sum_i f_i - (ref_i + f_0 - ref_0) over the sweep."""
  f, ref = np.asarray(scores, float), np.asarray(reference, float)
  return float(np.sum(f - (ref + f[0] - ref[0])))


def summaries(methods: Table, scenarios: Sequence[dict], metric: str
              ) -> dict[str, dict[str, dict[str, float | None]]]:
  """``{method: {type | "mean": {"relative", "effective"}}}``; effective
  is None without the reference method. {} without a rate sweep."""
  by_type = curves(scenarios)
  if not by_type:
    return {}
  out = {}
  for name, table in methods.items():
    row = {}
    for t, points in by_type.items():
      rates = [r for r, _ in points]
      scores = [table[s][metric] for _, s in points]
      row[t] = {"relative": relative(rates, scores),
                "effective": (effective(scores, [
                    methods[REFERENCE][s][metric] for _, s in points])
                              if REFERENCE in methods else None)}
    row["mean"] = {k: _mean([row[t][k] for t in by_type])
                   for k in ("relative", "effective")}
    out[name] = row
  return out


def _mean(values: list) -> float | None:
  return None if None in values else float(np.mean(values))
