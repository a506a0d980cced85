"""A small pre-LN transformer encoder for token ids (the text modality).

Input int32 ``(B, L)`` ids with 0 = padding (an absent text under the "zeros"
substitute is an all-padding row). Token embedding + learned positions ->
``depth`` pre-LN blocks (self-attention over non-padding keys, GELU MLP) ->
final LayerNorm -> mean over non-padding tokens -> dense projection. An
all-padding row pools to zeros (the count is clamped at 1 and its attention
mask lets each query see at least itself), so features stay finite.

Parameters carry logical axis names: embeddings ("vocab", "embed") /
("length", "embed"), MLP kernels ("embed", "mlp") / ("mlp", "embed"),
attention kernels ("embed", "heads", "kv") / ("heads", "kv", "embed").
Names that ``sharding.LOGICAL_RULES`` does not list are replicated
(``nn.logical_to_mesh`` maps unknown names to None); only "embed" is split.
"""
import flax.linen as nn
import jax.numpy as jnp

from ume_jax.models import layers
from ume_jax.models.registry import register_encoder

_embed_init = nn.initializers.normal(stddev=0.02)


class _Block(nn.Module):
  heads: int
  mlp_dim: int
  dtype: str = "float32"

  @nn.compact
  def __call__(self, x, mask):
    width = x.shape[-1]
    h = nn.LayerNorm(dtype=self.dtype, name="ln_attn")(x)
    h = nn.MultiHeadDotProductAttention(
        num_heads=self.heads, dtype=self.dtype,
        kernel_init=nn.with_logical_partitioning(
            nn.initializers.xavier_uniform(), ("embed", "heads", "kv")),
        out_kernel_init=nn.with_logical_partitioning(
            nn.initializers.xavier_uniform(), ("heads", "kv", "embed")),
        name="attn")(h, h, mask=mask)
    x = x + h
    h = nn.LayerNorm(dtype=self.dtype, name="ln_mlp")(x)
    h = nn.gelu(layers.dense(self.mlp_dim, ("embed", "mlp"), name="mlp_in",
                             relu_follows=False, dtype=self.dtype)(h))
    h = layers.dense(width, ("mlp", "embed"), name="mlp_out",
                     relu_follows=False, dtype=self.dtype)(h)
    return x + h


@register_encoder("text_transformer")
class TextTransformer(nn.Module):
  """Token ids (B, L) -> features (B, feature_dim)."""

  input_ndim = 1  # (L,) per example; a ClassVar, not a field

  vocab_size: int = 8000
  max_len: int = 128
  width: int = 256
  depth: int = 4
  heads: int = 4
  mlp_dim: int = 1024
  feature_dim: int = 128
  dtype: str = "float32"

  @nn.compact
  def __call__(self, ids: jnp.ndarray) -> jnp.ndarray:
    if ids.ndim != 2:
      raise ValueError(f"TextTransformer expects (batch, length) token ids,"
                       f" got shape {ids.shape}")
    if ids.shape[1] > self.max_len:
      raise ValueError(f"TextTransformer got sequences of length"
                       f" {ids.shape[1]} > max_len={self.max_len}")
    # Padding of evaluation batches may arrive as floats: ids are exact.
    ids = ids.astype(jnp.int32)
    valid = ids > 0                                     # (B, L)
    tok = nn.Embed(self.vocab_size, self.width, embedding_init=(
        nn.with_logical_partitioning(_embed_init, ("vocab", "embed"))),
                   name="token_embed")(ids)
    pos = self.param("pos_embed", nn.with_logical_partitioning(
        _embed_init, ("length", "embed")), (self.max_len, self.width))
    x = (tok + pos[None, :ids.shape[1]]).astype(self.dtype)
    # Keys are the valid tokens; each query also sees itself, so a row with
    # no valid token has no empty softmax (no NaN). Padding queries are
    # ignored by the pooling below.
    eye = jnp.eye(ids.shape[1], dtype=bool)[None]
    mask = (valid[:, None, :] | eye)[:, None]            # (B, 1, L, L)
    for i in range(self.depth):
      x = _Block(self.heads, self.mlp_dim, self.dtype, name=f"block{i}")(
          x, mask)
    x = nn.LayerNorm(dtype=self.dtype, name="ln_final")(x)
    w = valid.astype(x.dtype)[..., None]
    pooled = (x * w).sum(1) / jnp.maximum(w.sum(1), 1.0)
    out = layers.dense(self.feature_dim, ("embed", "flat"), name="proj",
                       relu_follows=False, dtype=self.dtype)(pooled)
    return out.astype(jnp.float32)
