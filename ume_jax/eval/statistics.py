"""Summaries over seeds: mean, standard deviation and a 95% Student-t
interval (n - 1 degrees of freedom; none for a single run)."""
import math
from typing import Sequence

from scipy import stats


def summary(values: Sequence[float]) -> dict:
  """``{"mean", "std", "ci95", "n"}`` of ``values`` (``std`` with n - 1;
  ``ci95`` is ``[low, high]``, or None when n = 1)."""
  n = len(values)
  mean = math.fsum(values) / n
  if n == 1:
    return {"mean": mean, "std": None, "ci95": None, "n": 1}
  std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
  half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
  return {"mean": mean, "std": std, "ci95": [mean - half, mean + half],
          "n": n}


def verdict(diff: dict, threshold: float = 0.0) -> str:
  """Whether the claim ``difference > threshold`` holds on a ``summary`` of
  paired differences: ``holds`` when the whole interval is above it,
  ``fails`` when it is entirely below, ``undecided`` otherwise; with one run,
  the point difference's side, marked as a single observation."""
  if diff["ci95"] is None:
    side = "holds" if diff["mean"] > threshold else "fails"
    return f"{side} (single run)"
  low, high = diff["ci95"]
  if low > threshold:
    return "holds"
  if high < threshold:
    return "fails"
  return "undecided"
