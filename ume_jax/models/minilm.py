"""MiniLM-L6 sentence encoder: Flax port of all-MiniLM-L6-v2 (BERT + pooling).

Input int32 ``(B, L)`` WordPiece ids of the MiniLM vocabulary (0 = [PAD],
rows ``[CLS] ... [SEP]`` right-padded with 0; see
``ume_jax.weights.minilm.tokenizer``). Architecture, as in Hugging Face's
``BertModel``:

  word + position (0..L-1) + token-type embeddings -> LayerNorm ->
  ``depth`` post-LN layers [x = LN(x + SelfAttention(x));
                            x = LN(x + Dense(GELU(Dense(x))))] ->
  mean over the non-padding tokens  (sentence-transformers' Pooling)
  -> optionally divided by its L2 norm (sentence-transformers' Normalize).

Where it differs from the original, and why:
  * Token types are always 0 (one sentence per example), so only row 0 of
    BERT's token-type table is kept, as the vector ``type_embed``; an unused
    row would only collect weight decay.
  * The padding mask comes from the ids (id > 0), not from a separate
    attention-mask input: [PAD] is id 0 and appears only as padding.
    Attention ignores padding keys (Flax puts the dtype's most negative
    value where HF adds it, the same softmax for any row with one real
    token); an all-padding row (an absent text) attends uniformly, stays
    finite and pools to zeros (the token count is clamped at 1).
  * No dropout (the original trains with 0.1): our encoders are
    deterministic, and the pre-trained model is used as a feature extractor
    or fine-tuned briefly.
  * BERT's pooler (tanh dense on [CLS]) is not part of the model:
    sentence-transformers does not use it.
  * ``normalize`` defaults to False: a linear head over unit vectors learns
    slowly; set it for sentence-transformers' exact output.
  * The position table has ``max_positions`` rows whatever ``max_len``, so
    the pre-trained weights fit an encoder configured for shorter texts.

GELU is the exact (erf) one, LayerNorm epsilon 1e-12, as in the checkpoint's
config. Parameters carry logical axis names ("embed" for the model width,
split over the fsdp mesh axis; the others are replicated).
"""
import flax.linen as nn
import jax.numpy as jnp

from ume_jax.models.registry import register_encoder

LN_EPS = 1e-12  # BERT's layer_norm_eps

_normal = nn.initializers.normal(stddev=0.02)  # BERT's initializer_range
_zeros = nn.initializers.zeros
_ones = nn.initializers.ones


def _layer_norm(dtype: str, name: str) -> nn.LayerNorm:
  return nn.LayerNorm(
      epsilon=LN_EPS, dtype=dtype, name=name,
      scale_init=nn.with_logical_partitioning(_ones, ("embed",)),
      bias_init=nn.with_logical_partitioning(_zeros, ("embed",)))


def _dense(features, axes: tuple[str, ...], dtype: str, name: str,
           axis=-1) -> nn.DenseGeneral:
  """DenseGeneral whose kernel (in..., out...) and bias (out...) are named."""
  n_in = 1 if isinstance(axis, int) else len(axis)
  return nn.DenseGeneral(
      features, axis=axis, dtype=dtype, name=name,
      kernel_init=nn.with_logical_partitioning(_normal, axes),
      bias_init=nn.with_logical_partitioning(_zeros, axes[n_in:]))


class _SelfAttention(nn.Module):
  """BERT self-attention: per-head q/k/v projections, output projection.

  Kernels are ``(embed, heads, kv)`` and ``(heads, kv, embed)`` (Flax's
  multi-head layout) so every parameter, biases included, has axis names.
  """

  heads: int
  dtype: str = "float32"

  @nn.compact
  def __call__(self, x, mask):
    width = x.shape[-1]
    shape = (self.heads, width // self.heads)
    axes = ("embed", "heads", "kv")
    q, k, v = (_dense(shape, axes, self.dtype, name)(x)
               for name in ("query", "key", "value"))
    h = nn.dot_product_attention(q, k, v, mask=mask, dtype=self.dtype)
    return _dense(width, ("heads", "kv", "embed"), self.dtype, "out",
                  axis=(-2, -1))(h)


class _Layer(nn.Module):
  """One post-LN BERT layer."""

  heads: int
  mlp_dim: int
  dtype: str = "float32"

  @nn.compact
  def __call__(self, x, mask):
    width = x.shape[-1]
    h = _SelfAttention(self.heads, self.dtype, name="attn")(x, mask)
    x = _layer_norm(self.dtype, "ln_attn")(x + h)
    h = _dense(self.mlp_dim, ("embed", "mlp"), self.dtype, "mlp_in")(x)
    h = nn.gelu(h, approximate=False)
    h = _dense(width, ("mlp", "embed"), self.dtype, "mlp_out")(h)
    return _layer_norm(self.dtype, "ln_mlp")(x + h)


def mean_pool(x: jnp.ndarray, valid: jnp.ndarray) -> jnp.ndarray:
  """Mean of ``x`` (B, L, D) over tokens where ``valid``; zeros if none."""
  w = valid.astype(x.dtype)[..., None]
  return (x * w).sum(1) / jnp.maximum(w.sum(1), 1.0)


def l2_normalize(x: jnp.ndarray, eps: float = 1e-12) -> jnp.ndarray:
  """x / max(||x||, eps), as torch's F.normalize: zero rows stay zero."""
  norm = jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True))
  return x / jnp.maximum(norm, eps)


@register_encoder("minilm_l6")
class MiniLM(nn.Module):
  """WordPiece ids (B, L) -> mean-pooled sentence features (B, width)."""

  input_ndim = 1  # (L,) per example; a ClassVar, not a field

  vocab_size: int = 30522
  max_positions: int = 512  # rows of the position table (the checkpoint's)
  max_len: int = 512        # longest input accepted
  width: int = 384
  depth: int = 6
  heads: int = 12
  mlp_dim: int = 1536
  normalize: bool = False
  dtype: str = "float32"

  def _check(self, ids):
    if ids.ndim != 2:
      raise ValueError(f"MiniLM expects (batch, length) token ids, got shape"
                       f" {ids.shape}")
    limit = min(self.max_len, self.max_positions)
    if ids.shape[1] > limit:
      raise ValueError(f"MiniLM got sequences of length {ids.shape[1]} >"
                       f" max_len={self.max_len} (position table:"
                       f" {self.max_positions}); tokenize with a smaller"
                       f" max_len.")

  def _embed(self, ids):
    tok = nn.Embed(self.vocab_size, self.width, embedding_init=(
        nn.with_logical_partitioning(_normal, ("vocab", "embed"))),
                   name="word_embed")(ids)
    pos = self.param("pos_embed", nn.with_logical_partitioning(
        _normal, ("length", "embed")), (self.max_positions, self.width))
    typ = self.param("type_embed", nn.with_logical_partitioning(
        _normal, ("embed",)), (self.width,))
    x = tok + pos[None, :ids.shape[1]] + typ
    return _layer_norm(self.dtype, "ln_embed")(x.astype(self.dtype))

  @nn.compact
  def __call__(self, ids: jnp.ndarray) -> jnp.ndarray:
    self._check(ids)
    # Padding of evaluation batches may arrive as floats: ids are exact.
    ids = ids.astype(jnp.int32)
    valid = ids > 0                                     # (B, L)
    mask = valid[:, None, None, :]                      # keys, (B, 1, 1, L)
    x = self._embed(ids)
    for i in range(self.depth):
      x = _Layer(self.heads, self.mlp_dim, self.dtype, name=f"layer{i}")(
          x, mask)
    pooled = mean_pool(x.astype(jnp.float32), valid)
    return l2_normalize(pooled) if self.normalize else pooled
