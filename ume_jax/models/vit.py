"""Vision transformers: Flax ports of Hugging Face's ``ViTModel`` and CLIP's
vision tower (``CLIPVisionModelWithProjection``), any size.

Input float ``(B, H, W, 3)``, already resized and normalised by the
checkpoint's own front end (``data.image_processor``). Architecture:

  non-overlapping P x P patches -> linear patch embedding (a stride-P conv,
  computed as one matrix multiply over flattened patches) -> [CLS] token in
  front -> + learned positions -> (CLIP: LayerNorm ``ln_pre``) ->
  ``depth`` pre-LN layers (``ume_jax/models/transformer.py``) ->
  LayerNorm ``ln_final`` (ViT's ``layernorm``, CLIP's ``post_layernorm``) ->
  features: the [CLS] token (``pool="cls"``), ViT's tanh ``pooler`` on it,
  or the mean over patches; then CLIP's bias-free projection
  (``projection_dim`` > 0).

``vit`` and ``clip_vision`` are this one module with each family's defaults
(ViT-B/16 and CLIP ViT-B/16); the rest comes from ``config.json``
(``ume_jax/weights/hf_vit.py``, ``hf_clip.py``). The position table fits
one image size: other sizes are refused (no interpolation), naming the
size the checkpoint was trained at. No dropout (deterministic encoders).

Units (``transformer``'s docstring): ``depth + 2``, 0 = patch embedding,
[CLS], positions (and ``ln_pre``), ``1 + i`` = ``layer{i}``, the last =
``ln_final``, pooling and projection. The state a call with ``stop`` <
``num_units()`` returns is the float32 token states ``(B, 1 + patches,
width)``: nothing is padding, so no mask travels with them.
"""
import einops
import flax.linen as nn
import jax.numpy as jnp

from ume_jax.models import transformer
from ume_jax.models.registry import register_encoder

POOLINGS = ("cls", "pooler", "mean")
EMBED_PARAMS = frozenset({"patch_embed", "patch_bias", "cls_token",
                          "pos_embed", "ln_pre"})
FINAL_PARAMS = frozenset({"ln_final", "pooler", "proj"})
_normal = nn.initializers.normal(stddev=0.02)


class VisionTransformer(nn.Module):
  """Images (B, H, W, 3) -> features (B, width or projection_dim)."""

  input_ndim = 3  # (H, W, C) per example; a ClassVar, not a field

  image_size: int = 224
  patch_size: int = 16
  channels: int = 3
  width: int = 768
  depth: int = 12
  heads: int = 12
  mlp_dim: int = 3072
  act: str = "gelu"
  eps: float = 1e-12
  patch_bias: bool = True     # ViT's patch embedding has a bias, CLIP's not
  ln_pre: bool = False        # CLIP normalises the embeddings first
  pool: str = "cls"
  projection_dim: int = 0     # CLIP's visual projection (0: none)
  dtype: str = "float32"

  def input_problem(self, shape) -> str | None:
    """Why per-example inputs of ``shape`` do not fit (config checks)."""
    want = (self.image_size, self.image_size, self.channels)
    if tuple(shape) != want:
      return (f"takes {want} images (its position table fits that size"
              " only); prepare them with the checkpoint's"
              " preprocessor_config.json (data.image_processor)")
    return None

  def num_units(self) -> int:
    """Embedding, ``depth`` layers, the top (the module docstring)."""
    return self.depth + 2

  def unit_of(self, path: tuple[str, ...]) -> int:
    """The unit that uses the parameter at ``path`` (in this tower)."""
    return transformer.tower_unit(path, self.depth, EMBED_PARAMS,
                                  FINAL_PARAMS, type(self).__name__)

  def _check(self, images):
    grid = self.image_size // self.patch_size
    if (images.ndim != 4 or images.shape[1:3] != (self.image_size,) * 2
        or images.shape[3] != self.channels):
      raise ValueError(
          f"{type(self).__name__} expects (batch, {self.image_size},"
          f" {self.image_size}, {self.channels}) images (its {grid}x{grid}"
          f" position table of {self.patch_size}-pixel patches fits that"
          f" size only); got {images.shape}. Prepare images with the"
          " checkpoint's preprocessor_config.json (data.image_processor).")

  def _embed(self, images):
    p = self.patch_size
    patches = einops.rearrange(images, "b (h p) (w q) c -> b (h w) (p q c)",
                               p=p, q=p)
    kernel = self.param(
        "patch_embed", nn.with_logical_partitioning(
            _normal, ("conv_height", "conv_width", "conv_in", "embed")),
        (p, p, self.channels, self.width))
    x = jnp.dot(patches.astype(self.dtype),
                kernel.reshape(-1, self.width).astype(self.dtype))
    if self.patch_bias:
      x = x + self.param("patch_bias", nn.with_logical_partitioning(
          nn.initializers.zeros, ("embed",)), (self.width,)).astype(x.dtype)
    cls = self.param("cls_token", nn.with_logical_partitioning(
        _normal, ("embed",)), (self.width,))
    x = jnp.concatenate(
        [jnp.broadcast_to(cls.astype(x.dtype), (x.shape[0], 1, self.width)),
         x], axis=1)
    pos = transformer.embedding(self, "pos_embed", x.shape[1], self.width)
    x = x + pos[None].astype(x.dtype)
    if self.ln_pre:
      x = transformer.layer_norm(self.eps, self.dtype, "ln_pre")(x)
    return x

  def _pool(self, x):
    if self.pool == "mean":
      return x[:, 1:].mean(axis=1)
    cls = x[:, 0]
    if self.pool == "pooler":
      cls = jnp.tanh(transformer.dense(self.width, ("embed", "pooled"),
                                       self.dtype, "pooler")(cls))
    return cls

  @nn.compact
  def __call__(self, images: jnp.ndarray, extra_tokens=None, *,
               start: int = 0, stop: int | None = None) -> jnp.ndarray:
    """Units ``start .. stop - 1`` (the module docstring): images at start
    0, else what a call with ``stop=start`` returned."""
    who = type(self).__name__
    stop = transformer.unit_bounds(start, stop, self.num_units(), who)
    transformer.check_prompt_units(extra_tokens, start, stop, who)
    if self.pool not in POOLINGS:
      raise ValueError(f"pool={self.pool!r}; expected one of {POOLINGS}")
    if start == stop:
      return images
    if start:
      x = images.astype(self.dtype)
    else:
      self._check(images)
      x = self._embed(images)
    first, last = transformer.layer_range(start, stop, self.depth)
    x = transformer.stack(
        x, depth=self.depth, heads=self.heads,
        mlp_dim=self.mlp_dim, act=self.act, eps=self.eps, pre_norm=True,
        dtype=self.dtype, extra_tokens=extra_tokens, first=first, last=last)
    if stop < self.num_units():
      return x.astype(jnp.float32)
    self.sow("intermediates", "encoded", x)
    x = transformer.layer_norm(self.eps, self.dtype, "ln_final")(x)
    self.sow("intermediates", "hidden", x)
    features = self._pool(x)
    self.sow("intermediates", "pooled", features)
    if self.projection_dim:
      features = transformer.dense(self.projection_dim, ("embed", "pooled"),
                                   self.dtype, "proj", use_bias=False)(
                                       features)
    return features.astype(jnp.float32)


@register_encoder("vit")
class ViT(VisionTransformer):
  """Hugging Face ``ViTModel`` (ViT-B/16 by default)."""


@register_encoder("clip_vision")
class ClipVision(VisionTransformer):
  """CLIP's vision tower with its projection (ViT-B/16 by default)."""

  act: str = "quick_gelu"
  eps: float = 1e-5
  patch_bias: bool = False
  ln_pre: bool = True
  projection_dim: int = 512
