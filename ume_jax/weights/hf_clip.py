"""CLIP checkpoints -> the ``clip_vision`` and ``clip_text`` encoders'
parameters; each tower's architecture from config.json.

Reads the whole-model files (``CLIPModel``: ``vision_model.*``,
``text_model.*``, the two projections and ``logit_scale``) and the
single-tower ones (``CLIPVisionModelWithProjection``,
``CLIPTextModelWithProjection`` and the projection-free ``CLIPVisionModel``
/ ``CLIPTextModel``). Each tower's reader takes its own tensors and skips
the other tower's and ``logit_scale``. Missing config keys take
transformers' defaults (``CLIPTextConfig`` / ``CLIPVisionConfig``: the
ViT-B/32 sizes), as transformers does when it loads the same file.
"""
from ume_jax.weights import hf_layers, hf_vit
from ume_jax.weights.errors import WeightsError
from ume_jax.weights.hf_snapshot import ConfigValues, Tensors
from ume_jax.weights.registry import register_snapshot

# transformers' CLIPTextConfig default; the openai checkpoints' files say 2.
DEFAULT_EOS_TOKEN_ID = 49407
_TOWERS = {"vision": ("clip_vision_model", "vision_config",
                      "CLIPVisionModelWithProjection"),
           "text": ("clip_text_model", "text_config",
                    "CLIPTextModelWithProjection")}


def tower_config(c: ConfigValues, tower: str) -> tuple[ConfigValues, int]:
  """(the tower's config, its projection dim, 0 = none) of a CLIP config."""
  model_type, section, with_projection = _TOWERS[tower]
  kind = c.config.get("model_type", "clip")
  if kind == "clip":
    return c.sub(section), c.get("projection_dim", int, 512)
  if kind == model_type:
    projected = with_projection in (c.config.get("architectures") or ())
    return c, c.get("projection_dim", int, 512) if projected else 0
  raise WeightsError(f"{c.file}: model_type = {kind!r}; the CLIP {tower}"
                     f" tower reads 'clip' or {model_type!r} checkpoints.")


def vision_architecture(c: ConfigValues) -> dict:
  v, projection = tower_config(c, "vision")
  return dict(image_size=hf_vit.image_size(v),
              patch_size=v.get("patch_size", int, 32),
              channels=v.get("num_channels", int, 3),
              width=v.get("hidden_size", int, 768),
              depth=v.get("num_hidden_layers", int, 12),
              heads=v.get("num_attention_heads", int, 12),
              mlp_dim=v.get("intermediate_size", int, 3072),
              act=v.get("hidden_act", str, "quick_gelu"),
              eps=v.get("layer_norm_eps", float, 1e-5),
              projection_dim=projection)


def text_architecture(c: ConfigValues) -> dict:
  t, projection = tower_config(c, "text")
  positions = t.get("max_position_embeddings", int, 77)
  return dict(vocab_size=t.get("vocab_size", int, 49408),
              max_positions=positions, max_len=positions,
              width=t.get("hidden_size", int, 512),
              depth=t.get("num_hidden_layers", int, 12),
              heads=t.get("num_attention_heads", int, 8),
              mlp_dim=t.get("intermediate_size", int, 2048),
              act=t.get("hidden_act", str, "quick_gelu"),
              eps=t.get("layer_norm_eps", float, 1e-5),
              eos_token_id=t.get("eos_token_id", int, DEFAULT_EOS_TOKEN_ID),
              projection_dim=projection)


def _projection(t: Tensors, key: str, width: int, dim: int) -> dict:
  return {"proj": {"kernel": t.take(key, (dim, width)).T}} if dim else {}


def convert_vision(t: Tensors, c: ConfigValues) -> dict:
  arch = vision_architecture(c)
  width, p = arch["width"], "vision_model."
  e = f"{p}embeddings."
  tree = {
      "patch_embed": hf_layers.patch_embedding(
          t, f"{e}patch_embedding.weight", arch["channels"], width,
          arch["patch_size"]),
      "cls_token": t.take(f"{e}class_embedding", (width,)),
      "pos_embed": t.take(f"{e}position_embedding.weight",
                          (hf_vit.positions(arch), width)),
      "ln_pre": hf_layers.layer_norm(t, f"{p}pre_layrnorm", width),
      **hf_layers.layers(t, hf_layers.CLIP, f"{p}encoder.layers.", arch),
      "ln_final": hf_layers.layer_norm(t, f"{p}post_layernorm", width),
      **_projection(t, "visual_projection.weight", width,
                    arch["projection_dim"]),
  }
  t.finish((p, "visual_projection."), r".*position_ids",
           f"CLIP vision tower {c.file} describes")
  return tree


def convert_text(t: Tensors, c: ConfigValues) -> dict:
  arch = text_architecture(c)
  width, p = arch["width"], "text_model."
  e = f"{p}embeddings."
  tree = {
      "word_embed": {"embedding": t.take(f"{e}token_embedding.weight",
                                         (arch["vocab_size"], width))},
      "pos_embed": t.take(f"{e}position_embedding.weight",
                          (arch["max_positions"], width)),
      **hf_layers.layers(t, hf_layers.CLIP, f"{p}encoder.layers.", arch),
      "ln_final": hf_layers.layer_norm(t, f"{p}final_layer_norm", width),
      **_projection(t, "text_projection.weight", width,
                    arch["projection_dim"]),
  }
  t.finish((p, "text_projection."), r".*position_ids", f"CLIP text tower {c.file} describes")
  return tree


VISION = register_snapshot("hf_clip_vision", "clip_vision", convert_vision,
                           vision_architecture)
TEXT = register_snapshot("hf_clip_text", "clip_text", convert_text,
                         text_architecture)
