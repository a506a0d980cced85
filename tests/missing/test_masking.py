"""Missing-modality masks and substitutes (ume_jax/missing/masking.py)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ume_jax.missing import masking


def _draw(key, probs, n=200_000, data_present=None):
  m = len(probs)
  data_present = (jnp.ones((n, m), bool) if data_present is None
                  else data_present)
  return np.asarray(masking.train_present(key, data_present, probs))


@pytest.mark.parametrize("probs", [(0.5, 0.5), (0.3, 0.7), (0.2, 0.4, 0.6)])
def test_drop_rate_matches_formula_and_never_all_dropped(probs):
  present = _draw(jax.random.key(0), probs)
  assert present.any(axis=1).all(), "a sample lost every modality"
  expected = np.array(probs) - np.prod(probs) / len(probs)
  np.testing.assert_allclose(1 - present.mean(0), expected, atol=0.005)


def test_zero_probability_drops_nothing():
  present = _draw(jax.random.key(1), (0.0, 0.0), n=1000)
  assert present.all()


def test_respects_natively_missing_modalities():
  rng = np.random.default_rng(0)
  data = rng.random((50_000, 3)) < 0.6
  data[~data.any(1), 0] = True  # every sample has at least one modality
  present = _draw(jax.random.key(2), (0.5, 0.5, 0.5), data_present=data)
  assert not (present & ~data).any(), "a natively missing modality came back"
  assert present.any(1).all()


def test_same_key_same_mask_other_key_other_mask():
  a = _draw(jax.random.key(3), (0.5, 0.5), n=512)
  b = _draw(jax.random.key(3), (0.5, 0.5), n=512)
  c = _draw(jax.random.key(4), (0.5, 0.5), n=512)
  np.testing.assert_array_equal(a, b)
  assert (a != c).mean() > 0.2


def _np(tree):
  return {k: np.asarray(v) for k, v in tree.items()}


def test_substitutes_applied_only_where_absent():
  x = {"a": jnp.arange(24.0).reshape(4, 2, 3) + 1, "b": jnp.ones((4, 5)) * 7}
  present = jnp.array([[1, 1], [0, 1], [1, 0], [0, 1]], bool)
  out = _np(masking.substitute_inputs(x, present, ("a", "b"), "zeros"))
  np.testing.assert_array_equal(out["a"][0], x["a"][0])
  np.testing.assert_array_equal(out["a"][1], 0)
  np.testing.assert_array_equal(out["a"][3], 0)
  np.testing.assert_array_equal(out["b"][2], 0)
  np.testing.assert_array_equal(out["b"][[0, 1, 3]], 7)
  means = {"a": jnp.full((2, 3), -5.0), "b": jnp.full((5,), 0.5)}
  out = _np(masking.substitute_inputs(x, present, ("a", "b"), "mean", means))
  np.testing.assert_array_equal(out["a"][1], -5.0)
  np.testing.assert_array_equal(out["a"][2], x["a"][2])
  np.testing.assert_array_equal(out["b"][2], 0.5)
  out = masking.substitute_inputs(x, present, ("a", "b"), "learned")
  np.testing.assert_array_equal(out["a"], x["a"])


def test_feature_substitute_uses_token():
  f = jnp.ones((3, 4))
  token = jnp.arange(4.0)
  out = np.asarray(masking.substitute_features(
      f, jnp.array([True, False, True]), token))
  np.testing.assert_array_equal(out[1], token)
  np.testing.assert_array_equal(out[[0, 2]], 1.0)


def test_permanent_training_missingness_is_per_example():
  index = jnp.arange(20_000)
  a = np.asarray(masking.permanently_present(7, index, (0.0, 0.3, 0.6)))
  assert a[:, 0].all()  # rate 0: never missing
  np.testing.assert_allclose(1 - a[:, 1:].mean(0), (0.3, 0.6), atol=0.015)
  # Same example, same answer, whatever batch it comes in.
  perm = np.random.default_rng(0).permutation(20_000)[:300]
  np.testing.assert_array_equal(
      np.asarray(masking.permanently_present(7, jnp.asarray(perm),
                                             (0.0, 0.3, 0.6))), a[perm])
  both = np.asarray(masking.permanently_present(7, index, (0.9, 0.9)))
  assert both.any(1).all()
  np.testing.assert_allclose(1 - both.mean(0), 0.9 - 0.9 * 0.9 / 2, atol=0.02)
