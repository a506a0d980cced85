"""Whisper tiny.en's audio encoder, ported to Flax (pre-trained via weights/).

Input: Whisper log-mel ``(B, 80, T)`` (``ume_jax.data.frontends.log_mel``; T even,
T <= 3000 = 30 s). As in Whisper: conv1d(80 -> 384, kernel 3, padding 1) +
GELU -> conv1d(384 -> 384, kernel 3, stride 2, padding 1) + GELU -> + the
sinusoidal position table -> 4 pre-LN blocks (6-head self-attention over
all frames, no mask; GELU MLP 384 -> 1536 -> 384) -> final LayerNorm ->
``(B, T / 2, 384)``. GELU is the exact erf form and LayerNorm's epsilon is
1e-5 (PyTorch's default), both as in the original.

Differences from the original, and why:
* Whisper requires T = 3000 (its position table has 1500 rows and it
  asserts the shape); here a shorter even T uses the first T / 2 rows, so
  that 2-s clips need not be padded to 30 s. CTranslate2 does the same.
* The position table is a parameter (initialised to Whisper's sinusoid,
  loaded from the weights file) instead of a buffer, so that the tree is
  what the file holds (its fp16 rounding included); freeze it in the
  optimizer if it must stay fixed.
* Output: ``pool="mean"`` (the default) averages the final-LN sequence over
  time into ``(B, 384)`` float32 features for late fusion; ``pool="none"``
  returns the sequence itself (used by the parity test). An absent audio
  arrives as an all-zeros log-mel: there is no mask, so it stays finite.

Parameters carry logical axis names: convolutions ("conv_width", "conv_in",
"embed"), positions ("length", "embed"), LayerNorms ("embed",), attention
("embed", "heads", "kv") / ("heads", "kv", "embed"), MLP ("embed", "mlp") /
("mlp", "embed"). Only "embed" is split over the mesh (infra/mesh.py).
"""
import math

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from ume_jax.models import layers
from ume_jax.models.registry import register_encoder

N_MELS = 80
MAX_POSITIONS = 1500      # 30 s of 20-ms encoder frames
LN_EPSILON = 1e-5         # PyTorch's LayerNorm default, which Whisper uses


def sinusoids(length: int, channels: int,
              max_timescale: float = 10000.0) -> np.ndarray:
  """Whisper's position table: [sin | cos] over geometric timescales."""
  half = channels // 2
  log_step = math.log(max_timescale) / (half - 1)
  inv_timescales = np.exp(-log_step * np.arange(half))
  angles = np.arange(length)[:, None] * inv_timescales[None, :]
  return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


def _sinusoid_init(key, shape, dtype=jnp.float32):
  del key  # deterministic: a fresh model starts from Whisper's table
  return jnp.asarray(sinusoids(*shape), dtype)


def _layer_norm(dtype: str, name: str) -> nn.LayerNorm:
  return nn.LayerNorm(
      epsilon=LN_EPSILON, dtype=dtype, name=name,
      scale_init=nn.with_logical_partitioning(nn.initializers.ones,
                                              ("embed",)),
      bias_init=nn.with_logical_partitioning(nn.initializers.zeros,
                                             ("embed",)))


def _conv(features: int, stride: int, name: str) -> nn.Conv:
  """Kernel (3, in, out): CTranslate2's (out, in, 3) transposed on read."""
  return nn.Conv(
      features, kernel_size=(3,), strides=(stride,), padding=((1, 1),),
      kernel_init=nn.with_logical_partitioning(
          nn.initializers.lecun_normal(), ("conv_width", "conv_in", "embed")),
      bias_init=nn.with_logical_partitioning(nn.initializers.zeros,
                                             ("embed",)),
      name=name)


def _gelu(x):
  return nn.gelu(x, approximate=False)  # Whisper uses the exact erf GELU


class _Block(nn.Module):
  heads: int
  mlp_dim: int
  dtype: str = "float32"

  @nn.compact
  def __call__(self, x):
    width = x.shape[-1]
    h = _layer_norm(self.dtype, "ln_attn")(x)
    h = nn.MultiHeadDotProductAttention(
        num_heads=self.heads, dtype=self.dtype,
        kernel_init=nn.with_logical_partitioning(
            nn.initializers.xavier_uniform(), ("embed", "heads", "kv")),
        out_kernel_init=nn.with_logical_partitioning(
            nn.initializers.xavier_uniform(), ("heads", "kv", "embed")),
        name="attn")(h, h)
    x = x + h
    h = _layer_norm(self.dtype, "ln_mlp")(x)
    h = _gelu(layers.dense(self.mlp_dim, ("embed", "mlp"), name="mlp_in",
                           relu_follows=False, dtype=self.dtype)(h))
    h = layers.dense(width, ("mlp", "embed"), name="mlp_out",
                     relu_follows=False, dtype=self.dtype)(h)
    return x + h


@register_encoder("whisper_tiny_en")
class WhisperEncoder(nn.Module):
  """Log-mel (B, 80, T) -> features (B, 384), or (B, T / 2, 384)."""

  input_ndim = 2  # (80, T) per example; a ClassVar, not a field

  width: int = 384
  depth: int = 4
  heads: int = 6
  mlp_dim: int = 1536
  pool: str = "mean"      # "mean" over time, or "none" for the sequence
  dtype: str = "float32"

  @nn.compact
  def __call__(self, mel: jnp.ndarray) -> jnp.ndarray:
    frames = _check_input(mel, self.pool)
    x = jnp.swapaxes(mel, 1, 2).astype(self.dtype)         # (B, T, 80)
    x = _gelu(_conv(self.width, 1, "conv1")(x))
    x = _gelu(_conv(self.width, 2, "conv2")(x))            # (B, T/2, D)
    pos = self.param("pos_embed", nn.with_logical_partitioning(
        _sinusoid_init, ("length", "embed")), (MAX_POSITIONS, self.width))
    x = x + pos[None, :frames // 2].astype(self.dtype)
    for i in range(self.depth):
      x = _Block(self.heads, self.mlp_dim, self.dtype, name=f"block{i}")(x)
    x = _layer_norm(self.dtype, "ln_final")(x).astype(jnp.float32)
    return x.mean(axis=1) if self.pool == "mean" else x


def _check_input(mel, pool: str) -> int:
  """The frame count T of a valid (B, 80, T) input; errors say what is off."""
  if pool not in ("mean", "none"):
    raise ValueError(f"WhisperEncoder pool={pool!r}; expected 'mean' or"
                     f" 'none'.")
  if mel.ndim != 3 or mel.shape[1] != N_MELS:
    raise ValueError(f"WhisperEncoder expects log-mel (batch, {N_MELS},"
                     f" frames), got shape {mel.shape}.")
  frames = mel.shape[2]
  if frames % 2 or not 0 < frames <= 2 * MAX_POSITIONS:
    raise ValueError(
        f"WhisperEncoder got {frames} log-mel frames; expected an even"
        f" number from 2 to {2 * MAX_POSITIONS} (30 s at 10 ms), since the"
        f" stride-2 conv halves it and there are {MAX_POSITIONS} positions.")
  return frames
