"""Metrics (ume_jax/eval/metrics.py): counts add up across batches exactly."""
import numpy as np

from ume_jax.eval import metrics


def test_accuracy_ignores_padding_and_adds_across_batches():
  logits = np.eye(4)[[0, 1, 2, 3, 0, 0]] * 5
  labels = np.array([0, 1, 0, 3, 1, 2])
  valid = np.array([1, 1, 1, 1, 1, 0], bool)
  total = None
  for sl in (slice(0, 4), slice(4, 6)):  # two batches
    total = metrics.add(total, metrics.batch_counts(
        logits[sl], labels[sl], valid[sl], multilabel=False))
  assert total["count"] == 5
  got = metrics.finalize(total, False)
  assert set(got) == {"accuracy", "ece", "nll"}
  assert got["accuracy"] == 3 / 5
  # The padding row (a confident 0 labelled 2) is in no ECE bin.
  assert total["ece_count"].sum() == 5


def test_multilabel_f1_variants_by_hand():
  # 3 examples x 3 classes; predictions are logits > 0.
  pred = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0]], bool)
  true = np.array([[1, 0, 0], [0, 1, 1], [1, 1, 0]], float)
  logits = np.where(pred, 2.0, -2.0)
  total = metrics.add(None, metrics.batch_counts(
      logits, true, np.ones(3, bool), multilabel=True))
  got = metrics.finalize(total, True)
  # Per class: c0 tp2 fp0 fn0 -> 1; c1 tp2 -> 1; c2 tp0 fp1 fn1 -> 0.
  np.testing.assert_allclose(got["f1_macro"], 2 / 3)
  np.testing.assert_allclose(got["f1_micro"], 2 * 4 / (2 * 4 + 1 + 1))
  np.testing.assert_allclose(got["f1_weighted"], (2 * 1 + 2 * 1 + 1 * 0) / 5)
  per_example = [2 * 1 / 3, 2 * 1 / 3, 1.0]
  np.testing.assert_allclose(got["f1_samples"], np.mean(per_example))
