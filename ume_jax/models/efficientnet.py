"""EfficientNet-Lite0, ported to carry its ImageNet weights (via weights/).

The architecture is EfficientNet-Lite0 as ``efficientnet-lite-pytorch``
(ml-illustrated, after lukemelas' EfficientNet-PyTorch) defines it: a 3x3
stride-2 stem conv (32 channels), 16 MBConv blocks in 7 stages (below), a
1x1 head conv to 1280 channels, global average pooling and (ImageNet only)
a 1000-way linear layer. An MBConv block is a 1x1 expansion conv (absent
when the expansion is 1), a k x k depthwise conv (stride 1 or 2), a 1x1
projection conv without activation, and a residual when the block keeps
its shape. Every conv is followed by BatchNorm (epsilon 1e-3) and, except
the projection, ReLU6; the Lite models have no squeeze-and-excitation and
no swish. Padding is TensorFlow's 'SAME' (extra row/column at the bottom
/ right), as the reference's static-same-padding convs. Inputs are RGB
images ``(B, H, W, 3)`` normalised with the ImageNet mean and std
(``data.image_normalization="imagenet"``).

BatchNorm is folded into the conv before it (``ume_jax/weights/
torch_efficientnet.py`` does it when reading the checkpoint): eval-mode BN
is a per-channel affine map, so ``conv(x, W) * s + b`` is ``conv(x, W * s)
+ b``, and every conv here carries a bias instead of BN. Why folded rather
than BN with stored statistics: our train state carries parameters only;
statistics kept as parameters would be moved by the optimizer (and by
weight decay) unless every config remembered to freeze them, and batch
statistics would make a half-missing batch (zero-filled images) change
the features of the present ones. Folded, there is nothing left to move
by mistake, the features never depend on the batch, and the forward pass
is cheaper; what trains, when a block is unfrozen, is the same per-channel
scale and shift BN's affine parameters gave (absorbed into kernel and
bias). The price: the tree is not the checkpoint's layout (no BN keys).

Deviations from the reference, and why:
  * ``image_size=S`` resizes the input to S x S (bilinear) first: clipart
    stores 32 x 32 drawings, and upscaling them inside the jitted model
    is cheaper than storing and moving larger images.
  * ``blocks=k`` keeps the first k MBConv blocks (features = that block's
    channels, no head conv): cheaper, and lower blocks transfer better to
    drawings than ImageNet's top ones.
  * The depthwise conv is computed as a sum of k*k shifted, strided
    slices times the kernel's taps (``depthwise_impl="shifts"``) instead
    of a grouped convolution: on XLA:CPU the grouped conv's gradient is a
    slow path, the elementwise sum and its gradient fuse.
  * ``classes=0`` (the default) ends in the pooled features (B, D), like
    every encoder here; ``classes=1000`` adds the ImageNet classifier
    (``_fc``) for parity tests.

Parameter tree: ``stem``, ``mbconv{i}/{expand,depthwise,project}``,
``head_conv``, ``fc``, each ``{kernel, bias}``; conv kernels HWIO
(depthwise: (k, k, 1, C)), logical axes as ``layers.conv`` /
``layers.dense``. The names are this encoder's own (no other encoder has
an ``mbconv{i}`` or ``head_conv``), so ``lr_multipliers`` regexes over
them leave a text encoder sharing the stage's optimizer config alone.

Units, so a trainer can run the frozen lowest part once per example and
cache it (``__call__``'s ``start`` / ``stop``, as the transformer towers'):
``blocks + 2`` of them, 0 = resize and ``stem``, ``1 + i`` = ``mbconv{i}``,
the last = ``head_conv`` (if ``head``), pooling and ``fc`` (if
``classes``; with ``head=False`` the last unit has no parameters). The
state a call with ``stop`` < ``num_units()`` returns is the float32
feature map ``(B, h, w, C)`` handed to unit ``stop``.
"""
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from ume_jax.models import layers
from ume_jax.models.registry import register_encoder
from ume_jax.models.transformer import unit_bounds

STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
# EfficientNet-Lite0's stages: (repeats, kernel, stride, expansion, out
# channels); the first block of a stage has the stride, the rest stride 1.
LITE0_STAGES: Sequence[tuple[int, int, int, int, int]] = (
    (1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
DEPTHWISE_IMPLS = ("shifts", "xla")


def block_args() -> list[tuple[int, int, int, int, int]]:
  """Per MBConv block: (in channels, out channels, kernel, stride, expand)."""
  out, cin = [], STEM_CHANNELS
  for repeats, kernel, stride, expand, cout in LITE0_STAGES:
    for r in range(repeats):
      out.append((cin, cout, kernel, stride if r == 0 else 1, expand))
      cin = cout
  return out


NUM_BLOCKS = len(block_args())


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
  """TensorFlow 'SAME': the extra pixel goes at the end."""
  out = -(-size // stride)
  total = max((out - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


def depthwise_shifts(x: jnp.ndarray, kernel: jnp.ndarray,
                     stride: int) -> jnp.ndarray:
  """Depthwise 'SAME' conv of NHWC ``x`` by (k, k, 1, C) ``kernel``."""
  k = kernel.shape[0]
  (pt, pb), (pl, pr) = (_same_pads(x.shape[1], k, stride),
                        _same_pads(x.shape[2], k, stride))
  xp = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
  ho, wo = -(-x.shape[1] // stride), -(-x.shape[2] // stride)
  out = 0.0
  for i in range(k):
    for j in range(k):
      view = lax.slice(xp, (0, i, j, 0),
                       (xp.shape[0], i + (ho - 1) * stride + 1,
                        j + (wo - 1) * stride + 1, xp.shape[3]),
                       (1, stride, stride, 1))
      out = out + view * kernel[i, j, 0]
  return out


def depthwise_xla(x: jnp.ndarray, kernel: jnp.ndarray,
                  stride: int) -> jnp.ndarray:
  pads = [_same_pads(x.shape[1], kernel.shape[0], stride),
          _same_pads(x.shape[2], kernel.shape[1], stride)]
  return lax.conv_general_dilated(
      x, kernel, (stride, stride), pads,
      dimension_numbers=("NHWC", "HWIO", "NHWC"),
      feature_group_count=x.shape[-1])


class DepthwiseConv(nn.Module):
  """k x k depthwise conv with bias (BN folded), 'SAME' padding."""

  kernel_size: int
  stride: int
  impl: str = "shifts"
  dtype: str = "float32"

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    c = x.shape[-1]
    axes = ("conv_height", "conv_width", "conv_in", "conv_out")
    kernel = self.param(
        "kernel", nn.with_logical_partitioning(
            nn.initializers.variance_scaling(2.0, "fan_in", "normal"), axes),
        (self.kernel_size, self.kernel_size, 1, c))
    bias = self.param("bias", nn.with_logical_partitioning(
        nn.initializers.zeros, ("conv_out",)), (c,))
    kernel = jnp.asarray(kernel, self.dtype)
    fn = depthwise_shifts if self.impl == "shifts" else depthwise_xla
    return fn(x, kernel, self.stride) + jnp.asarray(bias, self.dtype)


class MBConv(nn.Module):
  """Mobile inverted bottleneck, Lite form (ReLU6, no squeeze-excite)."""

  cin: int
  cout: int
  kernel_size: int
  stride: int
  expand: int
  depthwise_impl: str = "shifts"
  dtype: str = "float32"

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    y = x
    if self.expand != 1:
      y = nn.relu6(layers.conv(self.cin * self.expand, 1, 1, name="expand",
                               dtype=self.dtype)(y))
    y = nn.relu6(DepthwiseConv(self.kernel_size, self.stride,
                               self.depthwise_impl, self.dtype,
                               name="depthwise")(y))
    y = layers.conv(self.cout, 1, 1, name="project", dtype=self.dtype)(y)
    if self.stride == 1 and self.cin == self.cout:
      y = y + x
    return y


@register_encoder("efficientnet_lite0")
class EfficientNetLite0(nn.Module):
  """ImageNet-normalised RGB images (B, H, W, 3) -> features (B, D).

  D is 1280 with all 16 blocks and the head conv, else the channels of
  block ``blocks`` (e.g. 80 for ``blocks=6``); ``classes>0`` returns the
  ImageNet logits instead; ``pool="none"`` the last feature map.
  """

  input_ndim = 3  # (H, W, 3) per example; a ClassVar, not a field

  blocks: int = NUM_BLOCKS
  head: bool = True        # the 1x1 head conv to 1280 (all blocks only)
  image_size: int = 0      # resize inputs to this square size first; 0: no
  classes: int = 0         # >0: the ImageNet classifier (parity tests)
  pool: str = "mean"       # or "none"
  depthwise_impl: str = "shifts"
  dtype: str = "float32"

  def num_units(self) -> int:
    """Stem, ``blocks`` MBConv blocks, the top (the module docstring)."""
    return self.blocks + 2

  def unit_of(self, path: tuple[str, ...]) -> int:
    """The unit that uses the parameter at ``path`` (in this encoder)."""
    name = path[0] if path else ""
    if name == "stem":
      return 0
    if name in ("head_conv", "fc"):
      return self.blocks + 1
    if name.startswith("mbconv") and name[6:].isdigit() and (
        int(name[6:]) < self.blocks):
      return 1 + int(name[6:])
    raise ValueError(f"efficientnet_lite0: parameter {'/'.join(path)!r}"
                     " belongs to no unit.")

  def _check(self) -> None:
    if not 1 <= self.blocks <= NUM_BLOCKS:
      raise ValueError(f"efficientnet_lite0: blocks={self.blocks} must be in"
                       f" 1..{NUM_BLOCKS}.")
    if (self.head or self.classes) and self.blocks != NUM_BLOCKS:
      raise ValueError(f"efficientnet_lite0: head=True / classes need all"
                       f" {NUM_BLOCKS} blocks (blocks={self.blocks}); set"
                       " head=False to end at block blocks.")
    if self.classes and not self.head:
      raise ValueError("efficientnet_lite0: classes needs head=True.")
    if self.pool not in ("mean", "none"):
      raise ValueError(f"efficientnet_lite0: pool={self.pool!r} must be"
                       " 'mean' or 'none'.")
    if self.depthwise_impl not in DEPTHWISE_IMPLS:
      raise ValueError(f"efficientnet_lite0: depthwise_impl="
                       f"{self.depthwise_impl!r}; expected one of"
                       f" {DEPTHWISE_IMPLS}.")

  def _check_images(self, x: jnp.ndarray) -> None:
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError("efficientnet_lite0 expects RGB images (batch,"
                       f" height, width, 3), ImageNet-normalised; got shape"
                       f" {x.shape}")

  def _resize(self, x: jnp.ndarray) -> jnp.ndarray:
    size = int(self.image_size)
    if not size or x.shape[1:3] == (size, size):
      return x
    return jax.image.resize(x, (x.shape[0], size, size, x.shape[3]),
                            "bilinear")

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, start: int = 0,
               stop: int | None = None) -> jnp.ndarray:
    """Units ``start .. stop - 1`` (the module docstring): images at start
    0, else what a call with ``stop=start`` returned."""
    self._check()
    stop = unit_bounds(start, stop, self.num_units(), "efficientnet_lite0")
    if start == stop:
      return x
    if start:
      x = x.astype(self.dtype)
    else:
      self._check_images(x)
      x = self._resize(x.astype(self.dtype))
      x = nn.relu6(layers.conv(STEM_CHANNELS, 3, 2, name="stem",
                               dtype=self.dtype)(x))
    for i, args in enumerate(block_args()[:self.blocks]):
      if start <= 1 + i < stop:
        x = MBConv(*args, depthwise_impl=self.depthwise_impl,
                   dtype=self.dtype, name=f"mbconv{i}")(x)
    if stop < self.num_units():
      return x.astype(jnp.float32)
    return self._top(x)

  def _top(self, x: jnp.ndarray) -> jnp.ndarray:
    """The last unit: head conv, pooling, classifier."""
    if self.head:
      x = nn.relu6(layers.conv(HEAD_CHANNELS, 1, 1, name="head_conv",
                               dtype=self.dtype)(x))
    if self.pool == "none":
      return x.astype(jnp.float32)
    x = jnp.mean(x, axis=(1, 2))
    if self.classes:
      x = layers.dense(self.classes, ("embed", "classes"), name="fc",
                       relu_follows=False, dtype=self.dtype)(x)
    return x.astype(jnp.float32)
