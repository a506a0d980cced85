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

Units: a tower runs in ``depth + 2`` units, 0 = everything before the
first layer (embeddings), ``1 + i`` = ``layer{i}``, ``depth + 1`` =
everything after the last (final norm, pooling, projection), so a trainer
can run the frozen lowest units once, cache their output and run only the
rest per step (``__call__``'s ``start`` / ``stop``). ``stack``'s ``first``
/ ``last`` run a slice of the layers; the helpers below check the bounds,
map parameter paths to units, and carry a per-token channel (a padding
mask, a pooling position) that the upper units need beside the states.
"""
import re
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
          extra_tokens=None, first: int = 0, last: int | None = None):
  """``depth`` layers over x (B, L, width), named ``layer{i}`` in the
  calling module (call it from an ``@nn.compact`` method). ``valid``
  (B, L) marks real tokens (None: all); ``extra_tokens`` (B, n, P, width)
  or None: the prompt hook of the module docstring. ``first`` / ``last``
  run only layers ``first .. last - 1`` (None: to ``depth``), keeping the
  absolute names and prompts, so x is what layer ``first`` would get."""
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
  last = depth if last is None else last
  if not 0 <= first <= last <= depth:
    raise ValueError(f"layers {first}..{last} are not within 0..{depth}")
  for i in range(first, last):
    layer = Layer(heads, mlp_dim, act, eps, pre_norm, dtype, name=f"layer{i}")
    if i < n_extra:
      tokens = extra_tokens[:, i].astype(x.dtype)
      x = layer(jnp.concatenate([tokens, x], axis=1),
                prompted)[:, tokens.shape[1]:]
    else:
      x = layer(x, plain)
  return x


def unit_bounds(start: int, stop: int | None, units: int, who: str) -> int:
  """``stop`` resolved (None: ``units``), after checking that units
  ``start .. stop - 1`` lie in 0..``units - 1`` and stop >= 1 (stop 0
  would hand the raw input back). Python ints: they choose what is
  computed (static under jit)."""
  stop = units if stop is None else stop
  if not 0 <= start <= stop <= units or stop < 1:
    raise ValueError(f"{who}: units start={start}, stop={stop} must satisfy"
                     f" 0 <= start <= stop <= {units}, stop >= 1.")
  return stop


def check_prompt_units(extra_tokens, start: int, stop: int, who: str):
  """Prompts enter layers 0..n-1 (units 1..n) and change every state after
  them, so they need the whole prefix: no start after unit 0 (its cached
  input had none), no stop before the prompted layers are done."""
  n = 0 if extra_tokens is None else extra_tokens.shape[1]
  if n and (start > 0 or stop <= n):
    raise ValueError(f"{who}: extra_tokens prompt layers 0..{n - 1}, so"
                     f" they need units 0..{n} in one call; got start="
                     f"{start}, stop={stop}.")


def layer_range(start: int, stop: int, depth: int) -> tuple[int, int]:
  """The layers units ``start .. stop - 1`` run (unit 1 + i is layer i)."""
  return min(max(start - 1, 0), depth), min(max(stop - 1, 0), depth)


def tower_unit(path: tuple[str, ...], depth: int, embed: frozenset,
               final: frozenset, who: str) -> int:
  """The unit of a tower's parameter at ``path`` (inside the tower):
  names in ``embed`` run before the layers (unit 0), ``layer{i}`` is unit
  1 + i, names in ``final`` run after them (unit depth + 1)."""
  name = path[0] if path else ""
  if name in embed:
    return 0
  if name in final:
    return depth + 1
  m = re.fullmatch(r"layer(\d+)", name)
  if m and int(m.group(1)) < depth:
    return 1 + int(m.group(1))
  raise ValueError(f"{who}: parameter {'/'.join(path)!r} belongs to no unit.")


def with_channel(x: jnp.ndarray, channel: jnp.ndarray) -> jnp.ndarray:
  """(B, L, W) states and a (B, L) per-token channel -> (B, L, W + 1)
  float32, the state handed between units when the upper ones need the
  channel (states of any compute dtype survive float32 exactly)."""
  return jnp.concatenate([x.astype(jnp.float32),
                          channel.astype(jnp.float32)[..., None]], axis=-1)


def split_channel(state: jnp.ndarray, dtype) -> tuple[jnp.ndarray,
                                                      jnp.ndarray]:
  """``with_channel``'s inverse: states in ``dtype``, float (B, L) channel."""
  return state[..., :-1].astype(dtype), state[..., -1]
