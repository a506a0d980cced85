"""Calibration of a model's predictions: NLL, temperature scaling and ECE.

Pure numpy, float64, deterministic; the inputs are one model's logits on a
split (``evaluation.predict``) and that split's labels:

- single-label: ``logits`` (N, C), ``labels`` (N,) class ids; probabilities
  are ``softmax(logits / T)``;
- multi-label: ``logits`` (N, C), ``labels`` (N, C) 0/1; probabilities are
  per-class ``sigmoid(logits / T)``.

``ece`` bins with ``bin_counts`` / ``ece_from_bins``, the same functions the
streaming metrics (``metrics.py``) use, so the two agree by construction.
"""
import math
import warnings

import numpy as np

ECE_BINS = 15

# fit_temperature searches T in [T_MIN, T_MAX] (log T in [-3.0, 3.0]).
T_MIN, T_MAX = 0.05, 20.0
_GRID = 61          # coarse log-spaced grid over the range (holds T = 1)
_LOG_TOL = 1e-7     # golden-section stops when the log-T bracket is this wide


def _check(logits, labels, multilabel: bool):
  logits = np.asarray(logits, np.float64)
  if logits.ndim != 2 or logits.shape[0] == 0:
    raise ValueError(f"logits must be (N, C) with N > 0, got {logits.shape}")
  labels = np.asarray(labels)
  if multilabel:
    if labels.shape != logits.shape:
      raise ValueError(f"multi-label labels must be {logits.shape} (0/1),"
                       f" got {labels.shape}")
    labels = labels.astype(np.float64)
  else:
    if labels.shape != logits.shape[:1]:
      raise ValueError(f"labels must be ({logits.shape[0]},) class ids, got"
                       f" {labels.shape}")
    labels = labels.astype(np.int64)
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
      raise ValueError(f"labels must be in [0, {logits.shape[1]})")
  return logits, labels


def _log_softmax(z):
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _nll(logits, labels, multilabel, temperature) -> float:
  """Mean NLL of checked float64 inputs at ``temperature``."""
  z = logits / temperature
  if multilabel:
    # Per-class BCE of sigmoid(z) vs y: softplus(z) - y z, stably.
    per_class = (np.maximum(z, 0.0) - labels * z
                 + np.log1p(np.exp(-np.abs(z))))
    return float(per_class.sum(-1).mean())
  log_p = _log_softmax(z)
  return float(-np.take_along_axis(log_p, labels[:, None], -1).mean())


def nll(logits, labels, multilabel: bool, temperature: float = 1.0) -> float:
  """Mean negative log-likelihood per example of ``logits / temperature``:
  softmax cross-entropy (single-label) or per-class sigmoid binary
  cross-entropy summed over classes (multi-label), as ``metrics.loss``."""
  if not temperature > 0:
    raise ValueError(f"temperature must be > 0, got {temperature}")
  logits, labels = _check(logits, labels, multilabel)
  return _nll(logits, labels, multilabel, float(temperature))


def fit_temperature(logits, labels, multilabel: bool, *,
                    bounds: tuple[float, float] = (T_MIN, T_MAX),
                    at_bound: float | None = None) -> float:
  """The temperature T > 0 minimising ``nll(logits, labels, multilabel, T)``.

  Searched over log T in ``[log bounds[0], log bounds[1]]`` (default T in
  [0.05, 20]): a grid of 61 log-spaced points (which holds T = 1), then a
  golden-section search in the grid cell either side of the best point, to
  |d log T| < 1e-7. The NLL is convex in 1/T, so it is unimodal in log T and
  this finds its minimum over the range. Deterministic; ties (a flat NLL,
  e.g. constant logits) go to the temperature nearest 1, which is then
  returned exactly.

  At the edge: when the minimum lies at or beyond a bound (e.g. T -> 0 for
  logits that are all correct and separable, T -> inf for uninformative or
  anti-correlated ones) the bound itself is returned and a ``UserWarning``
  says so.
  """
  low, high = (float(b) for b in bounds)
  if not 0 < low < high:
    raise ValueError(f"bounds must satisfy 0 < low < high, got {bounds}")
  logits, labels = _check(logits, labels, multilabel)
  f = lambda log_t: _nll(logits, labels, multilabel, math.exp(log_t))
  a, b = math.log(low), math.log(high)
  grid = np.linspace(a, b, _GRID)
  if a < 0 < b:  # T = 1 exactly on the grid, where ties go
    grid[np.argmin(np.abs(grid))] = 0.0
  values = np.array([f(g) for g in grid])
  best = min(range(_GRID), key=lambda i: (values[i], abs(grid[i])))
  best_log, best_value = float(grid[best]), float(values[best])
  lo = float(grid[max(best - 1, 0)])
  hi = float(grid[min(best + 1, _GRID - 1)])
  # Golden-section search on [lo, hi].
  inv_phi = (math.sqrt(5.0) - 1.0) / 2.0
  c, d = hi - inv_phi * (hi - lo), lo + inv_phi * (hi - lo)
  fc, fd = f(c), f(d)
  while hi - lo > _LOG_TOL:
    if fc < fd:
      hi, d, fd = d, c, fc
      c = hi - inv_phi * (hi - lo)
      fc = f(c)
    else:
      lo, c, fc = c, d, fd
      d = lo + inv_phi * (hi - lo)
      fd = f(d)
  for x, fx in ((c, fc), (d, fd)):
    if fx < best_value:  # only a strict improvement moves off the grid
      best_log, best_value = x, fx
  best_log = min(max(best_log, a), b)
  if best_log - a < 2 * _LOG_TOL or b - best_log < 2 * _LOG_TOL:
    edge = low if best_log - a < 2 * _LOG_TOL else high
    use = edge if at_bound is None else float(at_bound)
    warnings.warn(f"fit_temperature: the NLL is smallest at the search"
                  f" bound T = {edge:g} (range {low:g}..{high:g}); using"
                  f" T = {use:g}", stacklevel=2)
    return use
  return math.exp(best_log)


def bin_index(confidence, bins: int = ECE_BINS) -> np.ndarray:
  """Equal-width bin of each confidence in [0, 1]: bin i holds
  (i / bins, (i + 1) / bins]; 0 falls in bin 0."""
  conf = np.asarray(confidence, np.float64)
  return np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)


def bin_counts(confidence, hit, bins: int = ECE_BINS, weights=None
               ) -> dict[str, np.ndarray]:
  """Per bin, the (weighted) sums of confidence and of hit (1 correct / 0),
  and the count: ``{"confidence", "hit", "count"}``, each (bins,) float64.
  Inputs of any shape are flattened; ``weights`` (same shape, default 1)
  weight each entry (0: padding, counted nowhere)."""
  conf = np.asarray(confidence, np.float64).ravel()
  hit = np.asarray(hit, np.float64).ravel()
  w = (np.ones_like(conf) if weights is None
       else np.asarray(weights, np.float64).ravel())
  keep = w != 0   # padding may hold anything, even NaN
  conf, hit, w = conf[keep], hit[keep], w[keep]
  idx = bin_index(conf, bins)
  return {"confidence": np.bincount(idx, w * conf, bins),
          "hit": np.bincount(idx, w * hit, bins),
          "count": np.bincount(idx, w, bins)}


def ece_from_bins(conf_sum, hit_sum, count) -> float:
  """sum over bins of |sum confidence - sum hit| / total count, i.e. the
  count-weighted mean over bins of |mean confidence - hit rate|."""
  total = float(np.sum(count))
  if total == 0:
    raise ValueError("ECE of no examples")
  return float(np.abs(np.asarray(conf_sum) - np.asarray(hit_sum)).sum()
               / total)


def confidences(logits, labels, multilabel: bool):
  """What ECE bins: (confidence, hit).

  Single-label: each example's top-1 softmax probability and whether the
  top-1 class is its label, (N,) each. Multi-label: every (example, class)
  sigmoid probability and its 0/1 label, (N, C) each.
  """
  logits, labels = _check(logits, labels, multilabel)
  if multilabel:
    return np.exp(-np.logaddexp(0.0, -logits)), labels  # stable sigmoid
  probs = np.exp(_log_softmax(logits))
  return (probs.max(-1),
          (np.argmax(logits, -1) == labels).astype(np.float64))


def ece(logits, labels, multilabel: bool, bins: int = ECE_BINS) -> float:
  """Expected calibration error with ``bins`` equal-width bins on [0, 1]
  (bin i is (i / bins, (i + 1) / bins]).

  Single-label: the usual top-1 ECE (Guo et al., 2017): examples binned by
  their top-1 softmax confidence; per bin |mean confidence - accuracy|,
  weighted by the bin's share of the N examples.
  Multi-label: the same over all N x C (example, class) pairs: each pair's
  sigmoid probability binned and compared with the mean of its 0/1 labels
  (calibration of every per-class probability, not only of the decisions).
  """
  conf, hit = confidences(logits, labels, multilabel)
  c = bin_counts(conf, hit, bins)
  return ece_from_bins(c["confidence"], c["hit"], c["count"])
