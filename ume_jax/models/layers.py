"""Dense and conv layers whose parameters carry logical axis names.

Logical names (never mesh axes) live here; ``ume_jax/sharding.py`` is the one
place that maps them onto the device mesh.
"""
import flax.linen as nn

_he = nn.initializers.variance_scaling(2.0, "fan_in", "normal")
_lecun = nn.initializers.lecun_normal()


def dense(features: int, axes: tuple[str, str], name: str | None = None,
          relu_follows: bool = True) -> nn.Dense:
  """A Dense layer whose kernel is annotated with ``axes`` (in, out)."""
  init = _he if relu_follows else _lecun
  return nn.Dense(
      features,
      kernel_init=nn.with_logical_partitioning(init, axes),
      bias_init=nn.with_logical_partitioning(nn.initializers.zeros, axes[1:]),
      name=name,
  )


def conv(features: int, kernel: int, stride: int, name: str | None = None
         ) -> nn.Conv:
  """A 'SAME' conv whose kernel (h, w, in, out) has logical axis names."""
  axes = ("conv_height", "conv_width", "conv_in", "conv_out")
  return nn.Conv(
      features,
      (kernel, kernel),
      strides=(stride, stride),
      padding="SAME",
      kernel_init=nn.with_logical_partitioning(_he, axes),
      bias_init=nn.with_logical_partitioning(nn.initializers.zeros,
                                             ("conv_out",)),
      name=name,
  )
