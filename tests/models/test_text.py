"""text_transformer encoder and the word-piece tokenizer."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ume_jax.infra import mesh as mesh_lib
from ume_jax.data.frontends import text_tokenizer
from ume_jax.models import build_encoder, registry

KW = dict(vocab_size=64, max_len=16, width=16, depth=2, heads=2, mlp_dim=32,
          feature_dim=8)


def _model_and_params(length=8):
  model = build_encoder("text_transformer", KW)
  ids = jnp.zeros((2, length), jnp.int32).at[0, :3].set(jnp.array([5, 6, 7]))
  return model, model.init(jax.random.key(0), ids), ids


def test_shapes_and_registry():
  model, params, ids = _model_and_params()
  assert registry.input_ndim("text_transformer") == 1
  assert model.apply(params, ids).shape == (2, 8)
  assert model.apply(params, ids).dtype == jnp.float32


def test_padding_invariance_and_all_padding_row():
  model, params, _ = _model_and_params()
  ids = jnp.array([[5, 6, 7, 9, 0, 0, 0, 0], [0] * 8], jnp.int32)
  f = model.apply(params, ids)
  longer = jnp.pad(ids, ((0, 0), (0, 8)))
  np.testing.assert_allclose(model.apply(params, longer), f, atol=1e-5)
  assert np.isfinite(np.asarray(f)).all()
  # Gradients through an all-padding row are finite too.
  g = jax.grad(lambda p: model.apply(p, ids).sum())(params)
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(g))
  # Float ids (padding rows of evaluation batches) give the same features.
  np.testing.assert_allclose(model.apply(params, ids.astype(jnp.float32)), f,
                             atol=1e-6)


def test_jit_and_logical_axes():
  model, params, ids = _model_and_params()
  np.testing.assert_allclose(jax.jit(model.apply)(params, ids),
                             model.apply(params, ids), atol=1e-5)
  abstract = jax.eval_shape(model.init, jax.random.key(0), ids)
  specs = nn.logical_to_mesh(nn.get_partition_spec(abstract),
                             mesh_lib.LOGICAL_RULES)  # unknown names: None
  emb = specs["params"]["token_embed"]["embedding"]
  assert tuple(emb) == (None, "fsdp")


def test_tokenizer_deterministic_padded_and_cached(tmp_path):
  texts = [f"the {w} sat on the mat, quietly {i}" for i, w in
           enumerate(["cat", "dog", "Cat", "bird"] * 5)]
  a = text_tokenizer.train_tokenizer(texts, 60)
  b = text_tokenizer.train_tokenizer(texts, 60)
  assert a.to_str() == b.to_str()
  assert a.token_to_id("[PAD]") == 0 and a.token_to_id("[UNK]") == 1
  ids = text_tokenizer.encode(a, ["The CAT sat", "", "mat " * 50], 6)
  assert ids.dtype == np.int32 and ids.shape == (3, 6)
  np.testing.assert_array_equal(ids[0], text_tokenizer.encode(
      a, ["the cat sat"], 6)[0])  # lowercase
  assert (ids[0, 3:] == 0).all() and (ids[1] == 0).all() and (ids[2] > 0).all()
  calls = []

  def source():
    calls.append(1)
    return texts

  t1, path = text_tokenizer.cached_tokenizer(tmp_path, source, 60, "k1")
  t2, _ = text_tokenizer.cached_tokenizer(tmp_path, source, 60, "k1")
  assert len(calls) == 1 and t1.to_str() == t2.to_str() and path.is_file()
  text_tokenizer.cached_tokenizer(tmp_path, source, 60, "k2")  # other data
  assert len(calls) == 2
