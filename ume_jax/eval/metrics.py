"""Classification metrics as sums that add across batches and hosts.

Step code returns per-batch count pytrees (``batch_counts``); the caller adds
them up and ``finalize`` turns the totals into scores. Padding examples carry
``valid == False`` and count nowhere, so every example is counted exactly once.
Multi-label tasks (MM-IMDB) get F1 at threshold 0.5 in four named variants;
``f1_samples`` averages per-example F1 and ``f1_weighted`` weights per-class F1
by the class's true-label support.
"""
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax


def metric_names(multilabel: bool) -> list[str]:
  if multilabel:
    return ["f1_micro", "f1_macro", "f1_samples", "f1_weighted"]
  return ["accuracy"]


def loss(logits: jnp.ndarray, labels: jnp.ndarray, multilabel: bool,
         weights: jnp.ndarray | None = None) -> jnp.ndarray:
  """Cross-entropy (softmax, or per-class sigmoid for multi-label), averaged
  over examples with their ``weights`` (default all 1)."""
  if multilabel:
    per_example = optax.sigmoid_binary_cross_entropy(logits, labels).sum(-1)
  else:
    per_example = optax.softmax_cross_entropy_with_integer_labels(logits,
                                                                  labels)
  if weights is None:
    return per_example.mean()
  return (per_example * weights).sum() / jnp.maximum(weights.sum(), 1.0)


def batch_counts(logits: jnp.ndarray, labels: jnp.ndarray, valid: jnp.ndarray,
                 multilabel: bool) -> dict[str, jnp.ndarray]:
  valid_f = valid.astype(jnp.float32)
  if not multilabel:
    correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
    return {"correct": jnp.sum(correct * valid_f), "count": jnp.sum(valid_f)}
  pred = (logits > 0).astype(jnp.float32) * valid_f[:, None]
  true = labels.astype(jnp.float32) * valid_f[:, None]
  tp = pred * true
  per_example_f1 = jnp.where(
      (pred + true).sum(-1) > 0,
      2 * tp.sum(-1) / jnp.maximum((pred + true).sum(-1), 1e-9), 1.0)
  return {"tp": tp.sum(0), "fp": (pred - tp).sum(0), "fn": (true - tp).sum(0),
          "f1_samples_sum": jnp.sum(per_example_f1 * valid_f),
          "count": jnp.sum(valid_f)}


def add(total: dict | None, counts: dict) -> dict:
  counts = jax.tree.map(np.asarray, jax.device_get(counts))
  return counts if total is None else jax.tree.map(np.add, total, counts)


def _f1(tp, fp, fn):
  denom = 2 * tp + fp + fn
  return np.where(denom > 0, 2 * tp / np.maximum(denom, 1e-9), 0.0)


def finalize(total: dict[str, Any], multilabel: bool) -> dict[str, float]:
  count = float(total["count"])
  if count == 0:
    raise ValueError("No valid examples were evaluated.")
  if not multilabel:
    return {"accuracy": float(total["correct"]) / count}
  tp, fp, fn = total["tp"], total["fp"], total["fn"]
  per_class = _f1(tp, fp, fn)
  support = tp + fn
  return {
      "f1_micro": float(_f1(tp.sum(), fp.sum(), fn.sum())),
      "f1_macro": float(per_class.mean()),
      "f1_samples": float(total["f1_samples_sum"]) / count,
      "f1_weighted": float((per_class * support).sum() /
                           max(support.sum(), 1e-9)),
  }
