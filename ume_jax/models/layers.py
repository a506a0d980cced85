"""Dense and conv layers whose parameters carry logical axis names.

Logical names (never mesh axes) live here; ``ume_jax/infra/mesh.py`` is the one
place that maps them onto the device mesh.
"""
import flax.linen as nn
import jax.numpy as jnp
from jax import lax

_he = nn.initializers.variance_scaling(2.0, "fan_in", "normal")
_lecun = nn.initializers.lecun_normal()


def dense(features: int, axes: tuple[str, str], name: str | None = None,
          relu_follows: bool = True, dtype=None) -> nn.Dense:
  """A Dense layer whose kernel is annotated with ``axes`` (in, out).

  ``dtype`` is the computation's (e.g. bfloat16); parameters stay float32.
  """
  init = _he if relu_follows else _lecun
  return nn.Dense(
      features, dtype=dtype,
      kernel_init=nn.with_logical_partitioning(init, axes),
      bias_init=nn.with_logical_partitioning(nn.initializers.zeros, axes[1:]),
      name=name,
  )


def im2col_conv(x, kernel, strides, padding, lhs_dilation=None,
                rhs_dilation=None, dimension_numbers=None,
                feature_group_count=1, precision=None, **unused):
  """``lax.conv_general_dilated`` for NHWC x HWIO as one matrix multiply.

  The kh*kw shifted, strided views of the padded input are concatenated on
  the channel axis and multiplied by the flattened kernel. XLA:CPU runs its
  dot far closer to peak than its convolution, and the gradient is a dot
  too (measurements: benchmarks/NOTES.md). Anything else falls back to lax.
  """
  del dimension_numbers, unused  # flax passes NHWC/HWIO
  ones = (1,) * (x.ndim - 2)
  if (x.ndim != 4 or feature_group_count != 1
      or tuple(lhs_dilation or ones) != ones
      or tuple(rhs_dilation or ones) != ones):
    return lax.conv_general_dilated(
        x, kernel, strides, padding, lhs_dilation, rhs_dilation,
        ("NHWC", "HWIO", "NHWC"), feature_group_count, precision=precision)
  kh, kw, cin, cout = kernel.shape
  sh, sw = strides
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(x.shape[1:3], (kh, kw), strides, padding)
  xp = jnp.pad(x, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))
  ho = (xp.shape[1] - kh) // sh + 1
  wo = (xp.shape[2] - kw) // sw + 1
  views = [lax.slice(xp, (0, i, j, 0),
                     (xp.shape[0], i + (ho - 1) * sh + 1,
                      j + (wo - 1) * sw + 1, cin), (1, sh, sw, 1))
           for i in range(kh) for j in range(kw)]
  patches = jnp.concatenate(views, axis=-1) if len(views) > 1 else views[0]
  y = jnp.dot(patches.reshape(-1, kh * kw * cin),
              kernel.reshape(kh * kw * cin, cout), precision=precision)
  return y.reshape(x.shape[0], ho, wo, cout)


CONV_IMPLS = {"im2col": im2col_conv, "xla": lax.conv_general_dilated}


def conv(features: int, kernel: int, stride: int, name: str | None = None,
         impl: str = "im2col", dtype=None) -> nn.Conv:
  """A 'SAME' conv whose kernel (h, w, in, out) has logical axis names.

  ``impl`` picks the computation, not the parameters: checkpoints are the
  same for both. ``dtype`` is the computation's; parameters stay float32.
  """
  if impl not in CONV_IMPLS:
    raise ValueError(f"Unknown conv impl {impl!r}; expected one of"
                     f" {sorted(CONV_IMPLS)}")
  axes = ("conv_height", "conv_width", "conv_in", "conv_out")
  return nn.Conv(
      features,
      (kernel, kernel),
      dtype=dtype,
      strides=(stride, stride),
      padding="SAME",
      kernel_init=nn.with_logical_partitioning(_he, axes),
      bias_init=nn.with_logical_partitioning(nn.initializers.zeros,
                                             ("conv_out",)),
      name=name,
      conv_general_dilated=CONV_IMPLS[impl],
  )
