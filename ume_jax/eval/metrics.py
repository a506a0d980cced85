"""Classification metrics as sums that add across batches and hosts.

Step code returns per-batch count pytrees (``batch_counts``); the caller adds
them up (``add``) and ``finalize`` turns the totals into scores. Padding
examples carry ``valid == False`` and count nowhere, so every example is
counted exactly once. Multi-label tasks (MM-IMDB) get F1 at threshold 0.5 in
four named variants; ``f1_samples`` averages per-example F1 and
``f1_weighted`` weights per-class F1 by the class's true-label support.

Besides the headline metrics (``metric_names``), ``finalize`` reports
calibration: ``ece`` (15 equal-width bins; top-1 confidence for single-label,
every (example, class) sigmoid probability for multi-label, as
``calibration.ece``) and ``nll`` (mean per example, as ``metrics.loss``).
Their inputs leave the step per example (``batch_counts(...)["per_example"]``)
and ``add`` bins and sums them on the host in float64, in a fixed order: a
float32 sum on the devices would depend on how the batch is sharded, and the
results must not depend on the device count.
"""
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils

from ume_jax.eval import calibration

# Bins of the streamed ECE (calibration.ECE_BINS).
ECE_BINS = calibration.ECE_BINS
# What finalize reports besides metric_names, for every task.
CALIBRATION_METRICS = ("ece", "nll")


def metric_names(multilabel: bool) -> list[str]:
  """The headline metrics (tables, the primary metric); ``finalize`` also
  returns ``CALIBRATION_METRICS``."""
  if multilabel:
    return ["f1_micro", "f1_macro", "f1_samples", "f1_weighted"]
  return ["accuracy"]


def _per_example_loss(logits, labels, multilabel: bool) -> jnp.ndarray:
  if multilabel:
    return optax.sigmoid_binary_cross_entropy(logits, labels).sum(-1)
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def loss(logits: jnp.ndarray, labels: jnp.ndarray, multilabel: bool,
         weights: jnp.ndarray | None = None) -> jnp.ndarray:
  """Cross-entropy (softmax, or per-class sigmoid for multi-label), averaged
  over examples with their ``weights`` (default all 1)."""
  per_example = _per_example_loss(logits, labels, multilabel)
  if weights is None:
    return per_example.mean()
  return (per_example * weights).sum() / jnp.maximum(weights.sum(), 1.0)


def _per_example(logits, labels, valid, multilabel: bool) -> dict:
  """What ``add`` bins for ECE and sums for NLL, zero where not valid:
  ``confidence`` and ``hit`` (B,) (top-1 softmax probability, top-1 correct)
  or (B, C) (sigmoid probabilities, 0/1 labels), ``nll`` (B,), ``valid``;
  computed in float32 whatever the logits' dtype."""
  logits = jnp.asarray(logits, jnp.float32)
  if multilabel:
    labels = jnp.asarray(labels, jnp.float32)
    confidence = jax.nn.sigmoid(logits)
    hit = labels
    mask = valid[:, None]
  else:
    confidence = jnp.exp(jnp.max(jax.nn.log_softmax(logits, -1), -1))
    hit = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
    mask = valid
  zero = lambda x, m: jnp.where(m, x, jnp.zeros_like(x))
  return {"confidence": zero(confidence, mask), "hit": zero(hit, mask),
          "nll": zero(_per_example_loss(logits, labels, multilabel), valid),
          "valid": valid}


def batch_counts(logits: jnp.ndarray, labels: jnp.ndarray, valid: jnp.ndarray,
                 multilabel: bool) -> dict[str, jnp.ndarray]:
  """Sums over the batch's valid examples, plus ``per_example``: the
  calibration inputs, which ``add`` turns into sums (ECE bins, NLL)."""
  valid_f = valid.astype(jnp.float32)
  per_example = _per_example(logits, labels, valid, multilabel)
  if not multilabel:
    correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
    return {"correct": jnp.sum(correct * valid_f), "count": jnp.sum(valid_f),
            "per_example": per_example}
  pred = (logits > 0).astype(jnp.float32) * valid_f[:, None]
  true = labels.astype(jnp.float32) * valid_f[:, None]
  tp = pred * true
  per_example_f1 = jnp.where(
      (pred + true).sum(-1) > 0,
      2 * tp.sum(-1) / jnp.maximum((pred + true).sum(-1), 1e-9), 1.0)
  return {"tp": tp.sum(0), "fp": (pred - tp).sum(0), "fn": (true - tp).sum(0),
          "f1_samples_sum": jnp.sum(per_example_f1 * valid_f),
          "count": jnp.sum(valid_f), "per_example": per_example}


def _calibration_sums(per_example: dict) -> dict[str, np.ndarray]:
  """A batch's ECE bins and NLL sum, float64, padding left out."""
  valid = np.asarray(per_example["valid"], bool)
  conf = np.asarray(per_example["confidence"])
  weights = np.broadcast_to(
      valid.reshape(valid.shape + (1,) * (conf.ndim - 1)), conf.shape)
  bins = calibration.bin_counts(conf, per_example["hit"], ECE_BINS, weights)
  nll = np.asarray(per_example["nll"], np.float64)[valid]
  return {"ece_confidence": bins["confidence"], "ece_hit": bins["hit"],
          "ece_count": bins["count"], "nll_sum": np.float64(nll.sum())}


def _whole(x) -> np.ndarray:
  """A batch-sharded array, whole, on every process."""
  if (isinstance(x, jax.Array) and not x.is_fully_addressable
      and not x.sharding.is_fully_replicated):
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(jax.device_get(x))


def to_host(counts):
  """Counts (any nesting of ``batch_counts`` dicts) as whole numpy arrays
  on every process."""
  return jax.tree.map(_whole, counts)


def add(total: dict | None, counts: dict) -> dict:
  """``total + counts``; a batch's ``per_example`` entries are first reduced
  to sums on the host (float64, in an order that does not depend on the
  sharding)."""
  counts = dict(counts)
  per_example = counts.pop("per_example", None)
  counts = jax.tree.map(np.asarray, jax.device_get(counts))
  if per_example is not None:
    counts.update(_calibration_sums(to_host(per_example)))
  return counts if total is None else jax.tree.map(np.add, total, counts)


def _f1(tp, fp, fn):
  denom = 2 * tp + fp + fn
  return np.where(denom > 0, 2 * tp / np.maximum(denom, 1e-9), 0.0)


def finalize(total: dict[str, Any], multilabel: bool) -> dict[str, float]:
  """``metric_names(multilabel)``, then ``ece`` and ``nll``."""
  count = float(total["count"])
  if count == 0:
    raise ValueError("No valid examples were evaluated.")
  calibrated = {
      "ece": calibration.ece_from_bins(total["ece_confidence"],
                                       total["ece_hit"], total["ece_count"]),
      "nll": float(total["nll_sum"]) / count}
  if not multilabel:
    return {"accuracy": float(total["correct"]) / count, **calibrated}
  tp, fp, fn = total["tp"], total["fp"], total["fn"]
  per_class = _f1(tp, fp, fn)
  support = tp + fn
  return {
      "f1_micro": float(_f1(tp.sum(), fp.sum(), fn.sum())),
      "f1_macro": float(per_class.mean()),
      "f1_samples": float(total["f1_samples_sum"]) / count,
      "f1_weighted": float((per_class * support).sum() /
                           max(support.sum(), 1e-9)),
      **calibrated,
  }
