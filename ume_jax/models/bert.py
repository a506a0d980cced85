"""BERT text towers: Flax port of Hugging Face's ``BertModel``, any size.

Input int32 ``(B, L)`` WordPiece ids (0 = [PAD], rows ``[CLS] ... [SEP]``
right-padded with 0). Architecture, as in ``BertModel``:

  word + position (0..L-1) + token-type embeddings -> LayerNorm ->
  ``depth`` post-LN layers (``ume_jax/models/transformer.py``) ->
  pooling: ``cls`` (the [CLS] token's state), ``pooler`` (BERT's tanh dense
  on it: ``pooler_output``) or ``mean`` over the non-padding tokens
  (sentence-transformers' Pooling), optionally L2-normalised.

The architecture of a checkpoint is read from its ``config.json``
(``ume_jax/weights/hf_bert.py``); ``minilm_l6`` is the same port with
all-MiniLM-L6-v2's sizes and mean pooling (its parameter names, and so its
checkpoints and freezing regexes, are those this port has always had).

Where it differs from the original, and why:
  * Token types are always 0 (one sentence per example), so only row 0 of
    BERT's token-type table is kept, as the vector ``type_embed``; an unused
    row would only collect weight decay.
  * The padding mask comes from the ids (id > 0), not from a separate
    attention-mask input: [PAD] is id 0 and appears only as padding. An
    all-padding row (an absent text) attends uniformly, stays finite and
    mean-pools to zeros (the token count is clamped at 1).
  * No dropout: our encoders are deterministic; pre-trained towers are
    used frozen or fine-tuned briefly.
  * The position table has ``max_positions`` rows whatever ``max_len``, so
    pre-trained weights fit an encoder configured for shorter texts.

Units (``transformer``'s docstring): ``depth + 2``, 0 = the embeddings
with ``ln_embed``, ``1 + i`` = ``layer{i}``, the last = pooling (with
``pooler``) and normalisation. The layers and the mean pooling need the
padding mask, which the hidden states cannot give back, so the state a
call with ``stop`` < ``num_units()`` returns is float32 ``(B, L, width +
1)``: the hidden states with ``valid`` (1.0 token / 0.0 padding) as the
last channel; a call with ``start`` > 0 takes that and splits it again.
"""
import flax.linen as nn
import jax.numpy as jnp

from ume_jax.models import transformer
from ume_jax.models.registry import register_encoder

POOLINGS = ("cls", "pooler", "mean")
EMBED_PARAMS = frozenset({"word_embed", "pos_embed", "type_embed", "ln_embed"})
_normal = nn.initializers.normal(stddev=0.02)


def mean_pool(x: jnp.ndarray, valid: jnp.ndarray) -> jnp.ndarray:
  """Mean of ``x`` (B, L, D) over tokens where ``valid``; zeros if none."""
  w = valid.astype(x.dtype)[..., None]
  return (x * w).sum(1) / jnp.maximum(w.sum(1), 1.0)


def l2_normalize(x: jnp.ndarray, eps: float = 1e-12) -> jnp.ndarray:
  """x / max(||x||, eps), as torch's F.normalize: zero rows stay zero."""
  norm = jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True))
  return x / jnp.maximum(norm, eps)


def length_problem(shape, max_len: int, max_positions: int) -> str | None:
  """Why ids of per-example ``shape`` do not fit, or None."""
  limit = min(max_len, max_positions)
  if len(shape) == 1 and shape[0] > limit:
    return (f"takes at most {limit} tokens (max_len={max_len}, position"
            f" table {max_positions}); set data.max_len <= {limit}")
  return None


def check_ids(ids, max_len: int, max_positions: int, who: str) -> None:
  if ids.ndim != 2:
    raise ValueError(f"{who} expects (batch, length) token ids, got shape"
                     f" {ids.shape}")
  limit = min(max_len, max_positions)
  if ids.shape[1] > limit:
    raise ValueError(f"{who} got sequences of length {ids.shape[1]} >"
                     f" max_len={max_len} (position table: {max_positions});"
                     " tokenize with a smaller data.max_len.")


@register_encoder("bert")
class Bert(nn.Module):
  """WordPiece ids (B, L) -> pooled features (B, width)."""

  input_ndim = 1  # (L,) per example; a ClassVar, not a field

  vocab_size: int = 30522
  max_positions: int = 512  # rows of the position table (the checkpoint's)
  max_len: int = 512        # longest input accepted
  width: int = 768
  depth: int = 12
  heads: int = 12
  mlp_dim: int = 3072
  act: str = "gelu"
  eps: float = 1e-12
  pool: str = "cls"
  normalize: bool = False
  dtype: str = "float32"

  def input_problem(self, shape) -> str | None:
    """Why per-example inputs of ``shape`` do not fit (config checks)."""
    return length_problem(shape, self.max_len, self.max_positions)

  def _embed(self, ids):
    tok = nn.Embed(self.vocab_size, self.width, embedding_init=(
        nn.with_logical_partitioning(_normal, ("vocab", "embed"))),
                   name="word_embed")(ids)
    pos = transformer.embedding(self, "pos_embed", self.max_positions,
                                self.width)
    typ = self.param("type_embed", nn.with_logical_partitioning(
        _normal, ("embed",)), (self.width,))
    x = tok + pos[None, :ids.shape[1]] + typ
    return transformer.layer_norm(self.eps, self.dtype, "ln_embed")(
        x.astype(self.dtype))

  def _pool(self, x, valid):
    if self.pool == "mean":
      return mean_pool(x.astype(jnp.float32), valid)
    cls = x[:, 0]
    if self.pool == "pooler":
      cls = jnp.tanh(transformer.dense(self.width, ("embed", "pooled"),
                                       self.dtype, "pooler")(cls))
    return cls.astype(jnp.float32)

  def num_units(self) -> int:
    """Embeddings, ``depth`` layers, pooling (the module docstring)."""
    return self.depth + 2

  def unit_of(self, path: tuple[str, ...]) -> int:
    """The unit that uses the parameter at ``path`` (in this tower)."""
    return transformer.tower_unit(
        path, self.depth, EMBED_PARAMS, frozenset({"pooler"}),
        type(self).__name__)

  def _start(self, x, start: int):
    """(states, valid) handed to unit ``start``: from ids at 0."""
    if start:
      x, valid = transformer.split_channel(x, self.dtype)
      return x, valid > 0.5
    check_ids(x, self.max_len, self.max_positions, type(self).__name__)
    # Padding of evaluation batches may arrive as floats: ids are exact.
    ids = x.astype(jnp.int32)
    return self._embed(ids), ids > 0

  @nn.compact
  def __call__(self, ids: jnp.ndarray, extra_tokens=None, *, start: int = 0,
               stop: int | None = None) -> jnp.ndarray:
    """Units ``start .. stop - 1`` (the module docstring): ids at start 0,
    else what a call with ``stop=start`` returned."""
    who = type(self).__name__
    stop = transformer.unit_bounds(start, stop, self.num_units(), who)
    transformer.check_prompt_units(extra_tokens, start, stop, who)
    if self.pool not in POOLINGS:
      raise ValueError(f"pool={self.pool!r}; expected one of {POOLINGS}")
    if start == stop:
      return ids
    x, valid = self._start(ids, start)
    first, last = transformer.layer_range(start, stop, self.depth)
    x = transformer.stack(
        x, depth=self.depth, heads=self.heads,
        mlp_dim=self.mlp_dim, act=self.act, eps=self.eps, pre_norm=False,
        dtype=self.dtype, valid=valid, extra_tokens=extra_tokens,
        first=first, last=last)
    if stop < self.num_units():
      return transformer.with_channel(x, valid)
    self.sow("intermediates", "hidden", x)
    pooled = self._pool(x, valid)
    return l2_normalize(pooled) if self.normalize else pooled


@register_encoder("minilm_l6")
class MiniLM(Bert):
  """all-MiniLM-L6-v2 (sentence-transformers): BERT, 6 x 384, mean pooling."""

  width: int = 384
  depth: int = 6
  mlp_dim: int = 1536
  pool: str = "mean"
