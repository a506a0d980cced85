"""im2col convolution equals XLA's convolution (ume_jax/models/layers.py)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from ume_jax.models import layers


@pytest.mark.parametrize("shape,kernel,stride", [
    ((2, 28, 28, 1), 3, 2), ((2, 7, 9, 5), 3, 1), ((3, 10, 10, 4), 5, 2),
    ((1, 6, 6, 3), 1, 1), ((2, 5, 4, 2), 3, 3)])
def test_im2col_matches_lax_values_and_gradients(shape, kernel, stride):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=shape), jnp.float32)
  k = jnp.asarray(rng.normal(size=(kernel, kernel, shape[-1], 6)), jnp.float32)
  dn = ("NHWC", "HWIO", "NHWC")

  def ref(x, k):
    return lax.conv_general_dilated(x, k, (stride, stride), "SAME",
                                    dimension_numbers=dn)

  def ours(x, k):
    return layers.im2col_conv(x, k, (stride, stride), "SAME",
                              dimension_numbers=dn)

  np.testing.assert_allclose(ours(x, k), ref(x, k), rtol=1e-5, atol=1e-5)
  loss = lambda f: lambda x, k: jnp.sum(jnp.sin(f(x, k)))
  for a, b in zip(jax.grad(loss(ours), (0, 1))(x, k),
                  jax.grad(loss(ref), (0, 1))(x, k)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_conv_impls_share_parameters():
  x = jnp.ones((2, 8, 8, 3))
  a, b = layers.conv(4, 3, 2, impl="im2col"), layers.conv(4, 3, 2, impl="xla")
  params = a.init(jax.random.key(0), x)
  np.testing.assert_allclose(a.apply(params, x), b.apply(params, x),
                             rtol=1e-5, atol=1e-5)
