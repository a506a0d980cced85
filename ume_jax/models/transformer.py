"""The transformer layers the pre-trained towers share (BERT, ViT, CLIP).

One layer, two orders: post-LN (BERT: ``x = LN(x + f(x))``) and pre-LN
(ViT, CLIP: ``x = x + f(LN(x))``), with the same parameter names either way,
so every tower's layer ``i`` is ``layer{i}/{attn/{query,key,value,out},
ln_attn, mlp_in, mlp_out, ln_mlp}``. Attention kernels are in Flax's
multi-head layout, ``(embed, heads, head_dim)`` and ``(heads, head_dim,
embed)``, so every parameter, biases included, carries logical axis names
("embed" is split over the fsdp mesh axis, ``ume_jax/infra/mesh.py``).

``stack`` runs the layers and is where extra learnable tokens enter
(prompt tuning): ``extra_tokens`` of shape ``(B, n, P, width)`` puts P
tokens in front of the sequence of each of the first ``n`` layers; what the
layer makes of them is dropped after it, so every prompted layer gets fresh
tokens and the sequence the tower pools from keeps its positions (VPT-deep's
scheme; Jia et al. 2022). Extra tokens are always attended to (they are
never padding) and, in a causal tower, visible to every position.
"""
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

_normal = nn.initializers.normal(stddev=0.02)  # BERT's / CLIP's scale
_zeros = nn.initializers.zeros
_ones = nn.initializers.ones


def quick_gelu(x):
  """CLIP's activation: x * sigmoid(1.702 x)."""
  return x * jax.nn.sigmoid(1.702 * x)


# Hugging Face's ``hidden_act`` names.
ACTIVATIONS: dict[str, Callable] = {
    "gelu": lambda x: nn.gelu(x, approximate=False),
    "gelu_new": lambda x: nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: nn.gelu(x, approximate=True),
    "quick_gelu": quick_gelu,
    "relu": nn.relu,
}


def activation(name: str) -> Callable:
  if name not in ACTIVATIONS:
    raise ValueError(f"Unknown activation {name!r} (hidden_act); known:"
                     f" {sorted(ACTIVATIONS)}.")
  return ACTIVATIONS[name]


def layer_norm(eps: float, dtype, name: str) -> nn.LayerNorm:
  return nn.LayerNorm(
      epsilon=eps, dtype=dtype, name=name,
      scale_init=nn.with_logical_partitioning(_ones, ("embed",)),
      bias_init=nn.with_logical_partitioning(_zeros, ("embed",)))


def dense(features, axes: tuple[str, ...], dtype, name: str, axis=-1,
          use_bias: bool = True) -> nn.DenseGeneral:
  """DenseGeneral whose kernel (in..., out...) and bias (out...) are named."""
  n_in = 1 if isinstance(axis, int) else len(axis)
  return nn.DenseGeneral(
      features, axis=axis, dtype=dtype, name=name, use_bias=use_bias,
      kernel_init=nn.with_logical_partitioning(_normal, axes),
      bias_init=nn.with_logical_partitioning(_zeros, axes[n_in:]))


def embedding(module: nn.Module, name: str, rows: int, width: int,
              axes=("length", "embed")) -> jnp.ndarray:
  """A learned (rows, width) table, e.g. positions, as a plain parameter."""
  return module.param(name, nn.with_logical_partitioning(_normal, axes),
                      (rows, width))


class Attention(nn.Module):
  """Multi-head self-attention: per-head q/k/v projections, output dense."""

  heads: int
  dtype: str = "float32"

  @nn.compact
  def __call__(self, x, mask):
    width = x.shape[-1]
    if width % self.heads:
      raise ValueError(f"width {width} is not divisible by {self.heads}"
                       " attention heads")
    shape = (self.heads, width // self.heads)
    axes = ("embed", "heads", "kv")
    q, k, v = (dense(shape, axes, self.dtype, name)(x)
               for name in ("query", "key", "value"))
    h = nn.dot_product_attention(q, k, v, mask=mask, dtype=self.dtype)
    return dense(width, ("heads", "kv", "embed"), self.dtype, "out",
                 axis=(-2, -1))(h)


class Layer(nn.Module):
  """One transformer layer, post-LN (``pre_norm=False``) or pre-LN."""

  heads: int
  mlp_dim: int
  act: str = "gelu"
  eps: float = 1e-12
  pre_norm: bool = False
  dtype: str = "float32"

  def _mlp(self, x):
    h = dense(self.mlp_dim, ("embed", "mlp"), self.dtype, "mlp_in")(x)
    return dense(x.shape[-1], ("mlp", "embed"), self.dtype, "mlp_out")(
        activation(self.act)(h))

  @nn.compact
  def __call__(self, x, mask):
    attn = Attention(self.heads, self.dtype, name="attn")
    ln_attn = layer_norm(self.eps, self.dtype, "ln_attn")
    ln_mlp = layer_norm(self.eps, self.dtype, "ln_mlp")
    if self.pre_norm:
      x = x + attn(ln_attn(x), mask)
      return x + self._mlp(ln_mlp(x))
    x = ln_attn(x + attn(x, mask))
    return ln_mlp(x + self._mlp(x))


def attention_mask(valid: jnp.ndarray | None, length: int, causal: bool,
                   batch: int) -> jnp.ndarray | None:
  """(B, 1, L, L) bool: keys that are ``valid`` (B, L), and, if ``causal``,
  not after the query. None when everything may attend to everything."""
  mask = None
  if valid is not None:
    mask = jnp.broadcast_to(valid[:, None, None, :], (batch, 1, length, length))
  if causal:
    tri = jnp.tril(jnp.ones((length, length), bool))[None, None]
    mask = tri if mask is None else mask & tri
  return mask


def stack(x, *, depth: int, heads: int, mlp_dim: int, act: str, eps: float,
          pre_norm: bool, dtype, causal: bool = False, valid=None,
          extra_tokens=None):
  """``depth`` layers over x (B, L, width), named ``layer{i}`` in the
  calling module (call it from an ``@nn.compact`` method). ``valid``
  (B, L) marks real tokens (None: all); ``extra_tokens`` (B, n, P, width)
  or None: the prompt hook of the module docstring."""
  batch, length = x.shape[:2]
  n_extra = 0 if extra_tokens is None else extra_tokens.shape[1]
  if extra_tokens is not None and (
      extra_tokens.ndim != 4 or extra_tokens.shape[0] != batch
      or extra_tokens.shape[-1] != x.shape[-1] or n_extra > depth):
    raise ValueError(
        f"extra_tokens must be (batch={batch}, layers <= {depth}, tokens,"
        f" width={x.shape[-1]}); got {extra_tokens.shape}")
  plain = attention_mask(valid, length, causal, batch)
  prompted = None
  if n_extra:
    p = extra_tokens.shape[2]
    real = jnp.ones((batch, length), bool) if valid is None else valid
    prompted = attention_mask(
        jnp.concatenate([jnp.ones((batch, p), bool), real], axis=1),
        p + length, causal, batch)
  for i in range(depth):
    layer = Layer(heads, mlp_dim, act, eps, pre_norm, dtype, name=f"layer{i}")
    if i < n_extra:
      tokens = extra_tokens[:, i].astype(x.dtype)
      x = layer(jnp.concatenate([tokens, x], axis=1),
                prompted)[:, tokens.shape[1]:]
    else:
      x = layer(x, plain)
  return x
