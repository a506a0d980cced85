"""EfficientNet-Lite0's Flax port (models/efficientnet.py), random weights:
shapes, options, the depthwise conv's two implementations, resizing and
parameter names. Parity with the reference and its weights:
tests/weights/test_torch_efficientnet.py."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ume_jax.models import efficientnet, registry
from ume_jax.models.efficientnet import EfficientNetLite0


def _init(model, x):
  return jax.jit(model.init)(jax.random.key(0), x)


def _shapes(model, x):
  """The variables' shapes, without computing anything."""
  return jax.eval_shape(lambda: _init(model, x))


def _output_shape(model, x):
  return jax.eval_shape(lambda: model.apply(_init(model, x), x)).shape


def test_registered_as_an_image_encoder():
  assert "efficientnet_lite0" in registry.encoder_names()
  assert registry.input_ndim("efficientnet_lite0") == 3
  assert len(efficientnet.block_args()) == efficientnet.NUM_BLOCKS == 16


@pytest.mark.parametrize("kwargs,shape", [
    ({}, (2, 1280)),
    ({"blocks": 6, "head": False}, (2, 80)),
    ({"blocks": 16, "head": False}, (2, 320)),
    ({"classes": 1000}, (2, 1000)),
    ({"blocks": 2, "head": False, "pool": "none"}, (2, 8, 8, 24)),
    ({"image_size": 64}, (2, 1280)),
])
def test_output_shapes(kwargs, shape):
  assert _output_shape(EfficientNetLite0(**kwargs),
                       jnp.zeros((2, 32, 32, 3))) == shape


def test_an_absent_image_gives_finite_features():
  # A missing image arrives as zeros (the ImageNet mean).
  x = jnp.zeros((2, 16, 16, 3))
  model = EfficientNetLite0(blocks=8, head=False)
  out = jax.jit(model.apply)(_init(model, x), x)
  assert out.dtype == jnp.float32 and bool(jnp.isfinite(out).all())


def test_fewer_blocks_have_the_first_blocks_parameters():
  x = jnp.zeros((1, 32, 32, 3))
  few = _shapes(EfficientNetLite0(blocks=6, head=False), x)
  assert sorted(few["params"]) == ["mbconv0", "mbconv1", "mbconv2",
                                   "mbconv3", "mbconv4", "mbconv5", "stem"]
  # The first block has no expansion conv (its expansion ratio is 1).
  assert sorted(few["params"]["mbconv0"]) == ["depthwise", "project"]


def test_parameters_carry_logical_axis_names():
  x = jnp.zeros((1, 32, 32, 3))
  variables = _shapes(EfficientNetLite0(classes=1000), x)
  leaves = jax.tree.leaves(variables["params"],
                           is_leaf=lambda v: isinstance(v, nn.Partitioned))
  assert leaves and all(isinstance(v, nn.Partitioned) for v in leaves)
  for v in leaves:
    assert len(v.names) == v.value.ndim
  depthwise = variables["params"]["mbconv3"]["depthwise"]["kernel"]
  assert depthwise.value.shape == (5, 5, 1, 144)   # 24 channels x 6, k=5
  assert depthwise.names == ("conv_height", "conv_width", "conv_in",
                             "conv_out")


@pytest.mark.parametrize("kernel,stride,size", [
    (3, 1, (9, 9)), (3, 2, (8, 8)), (5, 2, (7, 10)), (5, 1, (6, 5))])
def test_depthwise_shifts_equal_the_grouped_conv(kernel, stride, size):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(2, *size, 6)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(kernel, kernel, 1, 6)), jnp.float32)
  got = efficientnet.depthwise_shifts(x, k, stride)
  want = efficientnet.depthwise_xla(x, k, stride)
  assert got.shape == want.shape == (2, -(-size[0] // stride),
                                     -(-size[1] // stride), 6)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_same_padding_puts_the_extra_pixel_last():
  # TensorFlow's 'SAME' (the reference's static padding): 224 -> 112 with
  # a 3x3 stride-2 conv pads 0 before, 1 after; a 5x5 on 14 pads 1 and 2.
  assert efficientnet._same_pads(224, 3, 2) == (0, 1)
  assert efficientnet._same_pads(14, 5, 2) == (1, 2)
  assert efficientnet._same_pads(7, 5, 1) == (2, 2)


def test_image_size_resizes_before_the_stem():
  x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 32, 32, 3)),
                  jnp.float32)
  resized = EfficientNetLite0(blocks=3, head=False, image_size=48)
  params = _init(resized, x)
  big = jax.image.resize(x, (2, 48, 48, 3), "bilinear")
  np.testing.assert_allclose(
      jax.jit(resized.apply)(params, x),
      jax.jit(EfficientNetLite0(blocks=3, head=False).apply)(params, big),
      rtol=1e-5, atol=1e-6)


def test_gradients_reach_every_parameter_and_are_finite():
  x = jnp.asarray(np.random.default_rng(2).normal(size=(2, 16, 16, 3)),
                  jnp.float32)
  model = EfficientNetLite0(blocks=2, head=False)
  params = nn.meta.unbox(_init(model, x))
  grads = jax.jit(jax.grad(lambda p: model.apply(p, x).sum()))(params)
  assert all(bool(jnp.isfinite(g).all()) and bool((g != 0).any())
             for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("kwargs,match", [
    ({"blocks": 0}, "blocks=0"),
    ({"blocks": 6}, "head=False"),
    ({"head": False, "classes": 10}, "classes"),
    ({"pool": "max"}, "pool="),
    ({"depthwise_impl": "fft"}, "depthwise_impl"),
])
def test_bad_options(kwargs, match):
  with pytest.raises(ValueError, match=match):
    _shapes(EfficientNetLite0(**kwargs), jnp.zeros((1, 32, 32, 3)))


def test_bad_input_shape():
  with pytest.raises(ValueError, match="width, 3"):
    _shapes(EfficientNetLite0(), jnp.zeros((1, 32, 32, 1)))
