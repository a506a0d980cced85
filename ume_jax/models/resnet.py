"""ResNet-18-style encoder for spectrograms, images and short frame clips.

The audio and visual encoders of the audio-visual baselines (OGM-GE and the
UME-MMA paper's Kinetics-Sounds / AVE setups) are ResNet-18s: a (T, mel, 1)
spectrogram is an image, and a clip of frames is encoded frame by frame with
the 2D network and then averaged over time.

Deviations from torchvision's ResNet-18, and why:
  * GroupNorm instead of BatchNorm: our train state carries parameters only
    (no mutable ``batch_stats`` collection), and GroupNorm behaves the same in
    training and evaluation, which matters when a modality is zero-filled.
  * A stride-2 3x3 conv instead of the stem's max-pool: on XLA:CPU the gradient
    of max-pool (select-and-scatter) is a slow path.
  * A final dense projection to ``feature_dim`` (ReLU) after global average
    pooling, so every encoder in this package ends in features (B, D).
"""
import math
from typing import Sequence

import einops
import flax.linen as nn
import jax.numpy as jnp

from ume_jax.models import layers
from ume_jax.models.registry import register_encoder


def _norm(channels: int, name: str) -> nn.GroupNorm:
  """GroupNorm with up to 32 groups that divide ``channels`` (tiny widths)."""
  groups = math.gcd(32, channels)
  return nn.GroupNorm(
      num_groups=groups,
      scale_init=nn.with_logical_partitioning(nn.initializers.ones,
                                              ("conv_out",)),
      bias_init=nn.with_logical_partitioning(nn.initializers.zeros,
                                             ("conv_out",)),
      name=name)


class BasicBlock(nn.Module):
  """Two 3x3 convs with a residual; a 1x1 strided conv when shapes change."""

  features: int
  stride: int
  dtype: str = "float32"

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    y = nn.relu(_norm(self.features, "norm1")(
        layers.conv(self.features, 3, self.stride, name="conv1",
                    dtype=self.dtype)(x)))
    y = _norm(self.features, "norm2")(
        layers.conv(self.features, 3, 1, name="conv2", dtype=self.dtype)(y))
    if self.stride != 1 or x.shape[-1] != self.features:
      x = _norm(self.features, "proj_norm")(
          layers.conv(self.features, 1, self.stride, name="proj_conv",
                      dtype=self.dtype)(x))
    return nn.relu(x + y)


class ResNet2D(nn.Module):
  """Stem + 4 stages of BasicBlocks + global average pool; (N,H,W,C)->(N,C')."""

  widths: Sequence[int]
  blocks: Sequence[int]
  stem_stride: int
  dtype: str = "float32"

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    # Stem: 7x7 conv (stride stem_stride), then a stride-2 3x3 conv where
    # torchvision has its max-pool; stem_stride=1 keeps small inputs large.
    x = nn.relu(_norm(self.widths[0], "stem_norm")(
        layers.conv(self.widths[0], 7, self.stem_stride, name="stem_conv",
                    dtype=self.dtype)(x)))
    x = nn.relu(_norm(self.widths[0], "pool_norm")(
        layers.conv(self.widths[0], 3, 2, name="pool_conv",
                    dtype=self.dtype)(x)))
    for s, (width, n) in enumerate(zip(self.widths, self.blocks)):
      for b in range(n):
        stride = 2 if (b == 0 and s > 0) else 1
        x = BasicBlock(width, stride, self.dtype,
                       name=f"stage{s}_block{b}")(x)
    return jnp.mean(x, axis=(1, 2))


@register_encoder("resnet18")
class ResNet18(nn.Module):
  """ResNet-18 encoder; input (B, H, W, C) or frames (B, T, H, W, C).

  Frames are folded into the batch, encoded by the same 2D network, and the
  pooled per-frame features are averaged over T before the projection
  (temporal mean pooling, as the audio-visual baselines do).
  """

  input_ndim = None  # 3 (image) or 4 (frames) per example; checked here

  widths: Sequence[int] = (64, 128, 256, 512)
  blocks: Sequence[int] = (2, 2, 2, 2)
  stem_stride: int = 2
  feature_dim: int = 512
  dtype: str = "float32"

  def setup(self):
    if len(self.widths) != len(self.blocks):
      raise ValueError(f"resnet18: widths {tuple(self.widths)} and blocks"
                       f" {tuple(self.blocks)} need the same length.")
    self.backbone = ResNet2D(tuple(self.widths), tuple(self.blocks),
                             self.stem_stride, self.dtype)
    self.proj = layers.dense(self.feature_dim, ("flat", "embed"),
                             dtype=self.dtype)

  def frame_features(self, x: jnp.ndarray) -> jnp.ndarray:
    """Pooled backbone features before the projection: (B, widths[-1])."""
    if x.ndim not in (4, 5):
      raise ValueError(
          "resnet18 expects an image batch (batch, height, width, channels) or"
          f" frames (batch, time, height, width, channels); got shape {x.shape}")
    x = x.astype(self.dtype)
    if x.ndim == 4:
      return self.backbone(x)
    b = x.shape[0]
    f = self.backbone(einops.rearrange(x, "b t h w c -> (b t) h w c"))
    return einops.reduce(f, "(b t) d -> b d", "mean", b=b)

  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    f = self.frame_features(x)
    return nn.relu(self.proj(f)).astype(jnp.float32)
