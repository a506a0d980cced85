"""CLIP's text tower: Flax port of Hugging Face's
``CLIPTextModelWithProjection``, any size.

Input int32 ``(B, L)`` BPE ids from the checkpoint's ``tokenizer.json``
(``<|startoftext|> ... <|endoftext|>``, right-padded with 0). Architecture:

  token + position embeddings -> ``depth`` pre-LN layers with a causal
  mask (``ume_jax/models/transformer.py``) -> LayerNorm -> the state at the
  end-of-text token -> bias-free projection (``projection_dim`` > 0).

The end-of-text token is found as Hugging Face does: checkpoints whose
``eos_token_id`` is the legacy 2 (the openai ones) pool at the largest id
of the row, which is ``<|endoftext|>`` in CLIP's vocabulary; others at the
first occurrence of ``eos_token_id``. Attention is causal, so what follows
that token (the padding, whatever its id) changes nothing the tower
returns; no padding mask is needed. A row of zeros (an absent text under
the ``zeros`` substitute) is a run of id-0 tokens and pools at position 0:
finite, and the same for every absent text. No dropout.

Units (``transformer``'s docstring): ``depth + 2``, 0 = token and
position embeddings, ``1 + i`` = ``layer{i}``, the last = ``ln_final``,
pooling and projection. The layers need no mask (causal), but the pooling
needs the end-of-text position, which comes from the ids; so the state a
call with ``stop`` < ``num_units()`` returns is float32 ``(B, L, width +
1)``: the token states with a last channel that is 1.0 at the pooled
position and 0.0 elsewhere (one per row); a call with ``start`` > 0 pools
at its argmax.
"""
import flax.linen as nn
import jax.numpy as jnp

from ume_jax.models import transformer
from ume_jax.models.bert import check_ids, length_problem
from ume_jax.models.registry import register_encoder

LEGACY_EOS_ID = 2
EMBED_PARAMS = frozenset({"word_embed", "pos_embed"})
FINAL_PARAMS = frozenset({"ln_final", "proj"})
_normal = nn.initializers.normal(stddev=0.02)


def eos_positions(ids: jnp.ndarray, eos_token_id: int) -> jnp.ndarray:
  """(B,) index of each row's end-of-text token (see the docstring)."""
  if eos_token_id == LEGACY_EOS_ID:
    return jnp.argmax(ids, axis=-1)
  return jnp.argmax(ids == eos_token_id, axis=-1)


@register_encoder("clip_text")
class ClipText(nn.Module):
  """BPE ids (B, L) -> features (B, projection_dim or width)."""

  input_ndim = 1

  vocab_size: int = 49408
  max_positions: int = 77
  max_len: int = 77
  width: int = 512
  depth: int = 12
  heads: int = 8
  mlp_dim: int = 2048
  act: str = "quick_gelu"
  eps: float = 1e-5
  eos_token_id: int = LEGACY_EOS_ID
  projection_dim: int = 512
  dtype: str = "float32"

  def input_problem(self, shape) -> str | None:
    """Why per-example inputs of ``shape`` do not fit (config checks)."""
    return length_problem(shape, self.max_len, self.max_positions)

  def num_units(self) -> int:
    """Embeddings, ``depth`` layers, the top (the module docstring)."""
    return self.depth + 2

  def unit_of(self, path: tuple[str, ...]) -> int:
    """The unit that uses the parameter at ``path`` (in this tower)."""
    return transformer.tower_unit(path, self.depth, EMBED_PARAMS,
                                  FINAL_PARAMS, "ClipText")

  def _embed(self, ids):
    tok = nn.Embed(self.vocab_size, self.width, embedding_init=(
        nn.with_logical_partitioning(_normal, ("vocab", "embed"))),
                   name="word_embed")(ids)
    pos = transformer.embedding(self, "pos_embed", self.max_positions,
                                self.width)
    return (tok + pos[None, :ids.shape[1]]).astype(self.dtype)

  def _start(self, x, start: int):
    """(states, pooled positions (B,)) handed to unit ``start``."""
    if start:
      x, marker = transformer.split_channel(x, self.dtype)
      return x, jnp.argmax(marker, axis=-1)
    check_ids(x, self.max_len, self.max_positions, "ClipText")
    ids = x.astype(jnp.int32)
    return self._embed(ids), eos_positions(ids, self.eos_token_id)

  @nn.compact
  def __call__(self, ids: jnp.ndarray, extra_tokens=None, *, start: int = 0,
               stop: int | None = None) -> jnp.ndarray:
    """Units ``start .. stop - 1`` (the module docstring): ids at start 0,
    else what a call with ``stop=start`` returned."""
    stop = transformer.unit_bounds(start, stop, self.num_units(), "ClipText")
    transformer.check_prompt_units(extra_tokens, start, stop, "ClipText")
    if start == stop:
      return ids
    x, eos = self._start(ids, start)
    first, last = transformer.layer_range(start, stop, self.depth)
    x = transformer.stack(
        x, depth=self.depth, heads=self.heads, mlp_dim=self.mlp_dim,
        act=self.act, eps=self.eps, pre_norm=True, causal=True,
        dtype=self.dtype, extra_tokens=extra_tokens, first=first, last=last)
    if stop < self.num_units():
      return transformer.with_channel(
          x, jnp.arange(x.shape[1]) == eos[:, None])
    x = transformer.layer_norm(self.eps, self.dtype, "ln_final")(x)
    self.sow("intermediates", "hidden", x)
    pooled = x[jnp.arange(x.shape[0]), eos]
    self.sow("intermediates", "pooled", pooled)
    if self.projection_dim:
      pooled = transformer.dense(self.projection_dim, ("embed", "pooled"),
                                 self.dtype, "proj", use_bias=False)(pooled)
    return pooled.astype(jnp.float32)
