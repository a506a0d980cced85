"""Late-fusion heads and substitutes (ume_jax/models/classifier.py)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ume_jax.models import LateFusionClassifier

ENCODERS = {m: ("image_cnn", {"channels": (4,), "strides": (2,),
                              "feature_dim": 8}) for m in ("a", "b")}
X = {"a": jnp.asarray(np.random.default_rng(0).normal(size=(4, 8, 8, 1)),
                      jnp.float32),
     "b": jnp.asarray(np.random.default_rng(1).normal(size=(4, 6, 6, 1)),
                      jnp.float32)}
PRESENT = jnp.array([[1, 1], [1, 0], [0, 1], [1, 0]], bool)


def _model(**kw):
  model = LateFusionClassifier(("a", "b"), ENCODERS, 3, **kw)
  params = model.init(jax.random.key(0), X, PRESENT)["params"]
  return model, jax.tree.map(lambda p: getattr(p, "value", p), params,
                             is_leaf=lambda p: hasattr(p, "value"))


def _apply(model, params, x, present=PRESENT):
  return np.asarray(model.apply({"params": params}, x, present))


def _head(params, m, x):
  """The uni-modal branch alone: encoder + head of modality m."""
  sub = LateFusionClassifier(("a", "b"), ENCODERS, 3, missing_logits="drop")
  keep = jnp.array([[m == "a", m == "b"]] * 4)
  return np.asarray(sub.apply({"params": params}, x, keep))


def test_sum_logits_drop_leaves_absent_modality_out():
  model, params = _model(missing_logits="drop")
  out = _apply(model, params, X)
  np.testing.assert_allclose(out[1], _head(params, "a", X)[1], rtol=1e-6)
  np.testing.assert_allclose(out[2], _head(params, "b", X)[2], rtol=1e-6)
  np.testing.assert_allclose(
      out[0], _head(params, "a", X)[0] + _head(params, "b", X)[0], rtol=1e-5)


@pytest.mark.parametrize("fusion", ["sum_logits", "concat_linear"])
def test_learned_token_makes_absent_input_irrelevant(fusion):
  model, params = _model(substitute="learned", fusion=fusion)
  assert params["a_missing_token"].shape == (8,)
  noisy = dict(X, b=X["b"] * 100 + 5)  # b is absent for examples 1 and 3
  out, out_noisy = _apply(model, params, X), _apply(model, params, noisy)
  np.testing.assert_allclose(out[[1, 3]], out_noisy[[1, 3]], rtol=1e-6)
  assert not np.allclose(out[[0, 2]], out_noisy[[0, 2]])
  # ...and the token is what stands in: changing it changes those outputs.
  moved = dict(params, b_missing_token=params["b_missing_token"] + 1.0)
  assert not np.allclose(_apply(model, moved, X)[[1, 3]], out[[1, 3]])


def test_concat_linear_has_one_head_over_all_features():
  model, params = _model(fusion="concat_linear")
  assert params["fusion_head"]["kernel"].shape == (16, 3)
  assert "a_head" not in params
  assert _apply(model, params, X).shape == (4, 3)
