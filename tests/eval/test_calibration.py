"""Calibration (ume_jax/eval/calibration.py): NLL, temperature scaling, ECE,
and the streamed ECE / NLL of metrics.py against them."""
import math
import warnings

import numpy as np
import pytest

from ume_jax.eval import calibration, metrics


def _softmax(z):
  e = np.exp(z - z.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def _sample(seed, n, c, multilabel, scale=1.5):
  """True logits and labels drawn from the probabilities they give."""
  rng = np.random.default_rng(seed)
  true = rng.normal(0.0, scale, (n, c))
  if multilabel:
    return true, (rng.random((n, c)) < 1 / (1 + np.exp(-true))).astype(
        np.float32)
  cdf = np.cumsum(_softmax(true), -1)
  labels = (rng.random((n, 1)) > cdf).sum(-1)
  return true, np.minimum(labels, c - 1).astype(np.int32)


# --- nll ---------------------------------------------------------------------


def test_nll_by_hand():
  logits = np.log([[0.5, 0.25, 0.25], [0.1, 0.6, 0.3]])
  labels = np.array([0, 2])
  assert calibration.nll(logits, labels, False) == pytest.approx(
      -(math.log(0.5) + math.log(0.3)) / 2, abs=1e-12)
  # At T = 2 the logits halve.
  assert calibration.nll(logits, labels, False, 2.0) == pytest.approx(
      calibration.nll(logits / 2, labels, False), abs=1e-12)
  # Multi-label: per-class BCE summed over classes, averaged over examples.
  p = np.array([[0.9, 0.2], [0.6, 0.5]])
  y = np.array([[1, 0], [0, 1]])
  want = -(math.log(0.9) + math.log(0.8) + math.log(0.4) + math.log(0.5)) / 2
  assert calibration.nll(np.log(p / (1 - p)), y, True) == pytest.approx(
      want, abs=1e-12)


def test_nll_matches_the_training_loss():
  logits, labels = _sample(0, 50, 4, False)
  assert calibration.nll(logits, labels, False) == pytest.approx(
      float(metrics.loss(logits.astype(np.float32), labels, False)),
      rel=1e-5)
  logits, labels = _sample(0, 50, 4, True)
  assert calibration.nll(logits, labels, True) == pytest.approx(
      float(metrics.loss(logits.astype(np.float32), labels, True)), rel=1e-5)


def test_bad_inputs_are_refused():
  with pytest.raises(ValueError, match="labels must be"):
    calibration.nll(np.zeros((3, 2)), np.zeros((3, 2)), False)
  with pytest.raises(ValueError, match="in \\[0, 2\\)"):
    calibration.ece(np.zeros((3, 2)), np.array([0, 1, 2]), False)
  with pytest.raises(ValueError, match="multi-label labels"):
    calibration.fit_temperature(np.zeros((3, 2)), np.zeros(3), True)
  with pytest.raises(ValueError, match="temperature"):
    calibration.nll(np.zeros((3, 2)), np.zeros(3, int), False, 0.0)
  with pytest.raises(ValueError, match="N > 0"):
    calibration.ece(np.zeros((0, 2)), np.zeros(0, int), False)


# --- fit_temperature ---------------------------------------------------------

# N = 4000, C = 5, true logits ~ N(0, 1.5): over 20 seeds the fitted T had
# std 0.06 (single-label) and 0.05 (multi-label) around 3; 0.25 is > 4 std.
RECOVERY_N, RECOVERY_TOL = 4000, 0.25


@pytest.mark.parametrize("multilabel", [False, True])
def test_fit_temperature_recovers_a_known_temperature(multilabel):
  true, labels = _sample(1, RECOVERY_N, 5, multilabel)
  t = calibration.fit_temperature(true * 3, labels, multilabel)
  assert abs(t - 3.0) < RECOVERY_TOL, t
  # It is the minimum: nearby temperatures do no better.
  best = calibration.nll(true * 3, labels, multilabel, t)
  for other in (t * 0.99, t * 1.01, 1.0):
    assert calibration.nll(true * 3, labels, multilabel, other) > best


@pytest.mark.parametrize("multilabel", [False, True])
def test_calibrated_logits_keep_a_temperature_near_one(multilabel):
  true, labels = _sample(2, RECOVERY_N, 5, multilabel)
  t = calibration.fit_temperature(true, labels, multilabel)
  assert abs(t - 1.0) < RECOVERY_TOL / 3, t


@pytest.mark.parametrize("multilabel", [False, True])
def test_fit_temperature_lowers_nll_and_ece_of_an_overconfident_model(
    multilabel):
  true, labels = _sample(3, 2000, 6, multilabel)
  over = true * 5  # five times too sure
  t = calibration.fit_temperature(over, labels, multilabel)
  assert t > 3
  before = calibration.nll(over, labels, multilabel)
  after = calibration.nll(over, labels, multilabel, t)
  assert after < before - 0.1
  assert (calibration.ece(over / t, labels, multilabel)
          < calibration.ece(over, labels, multilabel) / 2)


def test_fit_temperature_is_deterministic_and_float64():
  true, labels = _sample(4, 500, 3, False)
  a = calibration.fit_temperature((true * 2).astype(np.float32), labels, False)
  b = calibration.fit_temperature((true * 2).astype(np.float32), labels, False)
  assert a == b and isinstance(a, float)


def test_fit_temperature_at_the_edges_returns_the_bound():
  # All correct and separable: the NLL falls as T -> 0.
  logits = np.array([[2.0, 0.0], [0.0, 2.0]] * 10)
  labels = np.array([0, 1] * 10)
  with pytest.warns(UserWarning, match="search bound T = 0.05"):
    assert calibration.fit_temperature(logits, labels, False) == \
        calibration.T_MIN
  # All wrong: the NLL falls as T -> inf.
  with pytest.warns(UserWarning, match="search bound T = 20"):
    assert calibration.fit_temperature(logits, 1 - labels, False) == \
        calibration.T_MAX
  with pytest.warns(UserWarning):
    assert calibration.fit_temperature(logits, labels, False,
                                       bounds=(0.5, 4.0)) == 0.5
  # What ensembles use instead of an edge: no rescaling at all.
  with pytest.warns(UserWarning, match="T = 0.05 .*using T = 1"):
    assert calibration.fit_temperature(logits, labels, False,
                                       at_bound=1.0) == 1.0
  with warnings.catch_warnings():   # an interior optimum ignores it
    warnings.simplefilter("error")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    noisy = (np.eye(3)[y] + rng.normal(size=(200, 3))) * 4
    assert calibration.fit_temperature(noisy, y, False, at_bound=1.0) > 1.5


def test_fit_temperature_of_a_flat_nll_is_one():
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    assert calibration.fit_temperature(
        np.zeros((8, 3)), np.arange(8) % 3, False) == 1.0


# --- ece ---------------------------------------------------------------------


def test_ece_of_perfectly_calibrated_bins_is_zero():
  # Single-label, 2 classes: groups of 20 examples at confidence p, of
  # which exactly 20 p are right.
  logits, labels = [], []
  for p in (0.6, 0.75, 0.9, 1.0):
    right = round(20 * p)
    logits += [[math.log(p), math.log(max(1 - p, 1e-300))]] * 20
    labels += [0] * right + [1] * (20 - right)
  assert calibration.ece(np.array(logits), np.array(labels), False) == \
      pytest.approx(0.0, abs=1e-12)
  # Multi-label: per-class probabilities p with a fraction p of 1 labels.
  p = np.array([0.1, 0.25, 0.5, 0.8])
  y = np.zeros((20, 4))
  for c, pc in enumerate(p):
    y[:round(20 * pc), c] = 1
  logits = np.broadcast_to(np.log(p / (1 - p)), (20, 4))
  assert calibration.ece(logits, y, True) == pytest.approx(0.0, abs=1e-12)


def test_ece_by_hand():
  # bins = 5, bin i = (i/5, (i+1)/5].
  probs = np.array([[0.7, 0.2, 0.1],      # conf .7  right  -> bin 3
                    [0.5, 0.3, 0.2],      # conf .5  wrong  -> bin 2
                    [0.1, 0.25, 0.65],    # conf .65 right  -> bin 3
                    [0.9, 0.05, 0.05]])   # conf .9  wrong  -> bin 4
  labels = np.array([0, 1, 2, 2])
  # bin 2: |0.5 - 0|; bin 3: |0.7 + 0.65 - 2|; bin 4: |0.9 - 0|; over 4.
  assert calibration.ece(np.log(probs), labels, False, bins=5) == \
      pytest.approx((0.5 + 0.65 + 0.9) / 4, abs=1e-12)
  # Multi-label: each (example, class) pair on its own.
  p = np.array([[0.9, 0.3], [0.7, 0.35]])
  y = np.array([[1, 0], [0, 1]])
  # 0.9 -> bin 4 |0.9 - 1|; 0.3 & 0.35 -> bin 1 |0.65 - 1|; 0.7 -> bin 3.
  assert calibration.ece(np.log(p / (1 - p)), y, True, bins=5) == \
      pytest.approx((0.1 + 0.35 + 0.7) / 4, abs=1e-12)


def test_bins_hold_their_upper_edge():
  np.testing.assert_array_equal(
      calibration.bin_index([0.0, 0.1, 0.2, 0.21, 0.5, 0.99, 1.0], bins=5),
      [0, 0, 0, 1, 2, 4, 4])


# --- the streamed ECE and NLL (metrics.py) -----------------------------------


def _stream(logits, labels, valid, multilabel, batch):
  total = None
  for i in range(0, len(logits), batch):
    sl = slice(i, i + batch)
    total = metrics.add(total, metrics.batch_counts(
        logits[sl], labels[sl], valid[sl], multilabel))
  return metrics.finalize(total, multilabel)


@pytest.mark.parametrize("multilabel", [False, True])
def test_streamed_ece_and_nll_equal_the_batch_ones(multilabel):
  true, labels = _sample(5, 101, 7, multilabel)
  logits = (true * 2).astype(np.float32)
  valid = np.ones(101, bool)
  got = _stream(logits, labels, valid, multilabel, batch=16)
  assert got["ece"] == pytest.approx(
      calibration.ece(logits, labels, multilabel), abs=1e-6)
  assert got["nll"] == pytest.approx(
      calibration.nll(logits, labels, multilabel), rel=1e-5)
  # One batch or many: the same numbers.
  whole = _stream(logits, labels, valid, multilabel, batch=101)
  assert whole["ece"] == pytest.approx(got["ece"], abs=1e-12)
  assert whole["nll"] == pytest.approx(got["nll"], rel=1e-12)


@pytest.mark.parametrize("multilabel", [False, True])
def test_padding_counts_nowhere(multilabel):
  true, labels = _sample(6, 40, 5, multilabel)
  logits = (true * 3).astype(np.float32)
  # 8 padding rows with wild logits and labels, as the last batch would be.
  pad_logits = np.full((8, 5), 30.0, np.float32)
  pad_logits[:, 0] = -30.0
  pad_labels = (np.ones((8, 5), np.float32) if multilabel
                else np.zeros(8, np.int32))
  padded = _stream(np.concatenate([logits, pad_logits]),
                   np.concatenate([labels, pad_labels]),
                   np.arange(48) < 40, multilabel, batch=16)
  clean = _stream(logits, labels, np.ones(40, bool), multilabel, batch=16)
  for k in ("ece", "nll"):
    assert padded[k] == pytest.approx(clean[k], abs=1e-12), k
  assert padded["ece"] == pytest.approx(
      calibration.ece(logits, labels, multilabel), abs=1e-6)


def test_finalize_adds_ece_and_nll_after_the_headline_metrics():
  true, labels = _sample(7, 20, 3, False)
  got = _stream(true.astype(np.float32), labels, np.ones(20, bool), False, 8)
  assert list(got) == metrics.metric_names(False) + ["ece", "nll"]
  true, labels = _sample(7, 20, 3, True)
  got = _stream(true.astype(np.float32), labels, np.ones(20, bool), True, 8)
  assert list(got) == metrics.metric_names(True) + ["ece", "nll"]
  assert metrics.metric_names(False) == ["accuracy"]
  assert list(metrics.CALIBRATION_METRICS) == ["ece", "nll"]
