"""Missing-modality masks and substitutes (ume_jax/missing/masking.py)."""
import jax
import jax.numpy as jnp
import ml_collections
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
  # Skipped modalities pass through whatever their shape (a cached frozen
  # prefix, which the dataset mean's shape no longer fits).
  cached = {**x, "a": jnp.ones((4, 9))}
  out = _np(masking.substitute_inputs(cached, present, ("a", "b"), "mean",
                                      means, skip=("a",)))
  np.testing.assert_array_equal(out["a"], 1.0)
  np.testing.assert_array_equal(out["b"][2], 0.5)


def test_feature_substitute_uses_token():
  f = jnp.ones((3, 4))
  token = jnp.arange(4.0)
  out = np.asarray(masking.substitute_features(
      f, jnp.array([True, False, True]), token))
  np.testing.assert_array_equal(out[1], token)
  np.testing.assert_array_equal(out[[0, 2]], 1.0)


def _spec(train_size):
  return type("Spec", (), {"modalities": ("a", "b", "c"),
                           "split_sizes": {"train": train_size}})()


def _config(**train_missing):
  c = ml_collections.ConfigDict(dict(
      model={"substitute": "zeros"}, mma={"drop_probs": {"a": 0, "b": 0,
                                                       "c": 0}},
      train_missing=dict(type="", ratio=0.0,
                         rates={"a": 0.0, "b": 0.0, "c": 0.0}, seed=7)))
  c.train_missing.update(train_missing)
  return c


def test_training_missingness_is_per_example_and_exact():
  spec = masking.MaskingSpec.from_config(
      _config(rates={"a": 0.0, "b": 0.3, "c": 0.5}), _spec(1000))
  index = np.arange(1000)
  batch = {"present": np.ones((1000, 3), bool), "index": index}
  present = np.asarray(spec.training_present(batch))
  assert present[:, 0].all()                  # rate 0: never missing
  assert (~present).sum(0).tolist() == [0, 300, 500]
  assert (present.sum(1) >= 2).all()          # exclusive: one lost at most
  # Same example, same answer, whatever batch it comes in.
  perm = np.random.default_rng(0).permutation(1000)[:100]
  np.testing.assert_array_equal(np.asarray(spec.training_present(
      {"present": np.ones((100, 3), bool), "index": perm})), present[perm])


def test_an_example_keeps_its_only_native_modality():
  spec = masking.MaskingSpec.from_config(
      _config(type="both", ratio=1.0), _spec(30))
  native = np.zeros((30, 3), bool)
  native[:, 1] = True                          # only "b", natively
  present = np.asarray(spec.training_present(
      {"present": native, "index": np.arange(30)}))
  np.testing.assert_array_equal(present, native)


def test_no_training_missingness_leaves_the_batch_alone():
  spec = masking.MaskingSpec.from_config(_config(), _spec(10))
  assert spec.train_absent is None


def test_map_substitute_is_ones_for_images_and_padding_for_text():
  x = {"a": jnp.full((2, 3), 0.25), "b": jnp.full((2, 4), 7, jnp.int32)}
  out = _np(masking.substitute_inputs(x, jnp.array([[False, False],
                                                    [True, True]]),
                                      ("a", "b"), "map"))
  np.testing.assert_array_equal(out["a"][0], 1.0)
  np.testing.assert_array_equal(out["b"][0], 0)
  np.testing.assert_array_equal(out["a"][1], 0.25)
  np.testing.assert_array_equal(out["b"][1], 7)
