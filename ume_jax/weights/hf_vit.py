"""ViT checkpoints (``ViTModel``, ``ViTForImageClassification``) -> the
``vit`` encoder's parameters; the architecture from config.json.

Keys are read with or without the ``vit.`` prefix; the classification head
(``classifier.*``) is skipped, as is the masked-image-modelling
``mask_token``. The pooler is converted when the file has one (the
in21k checkpoints; ``pool="pooler"`` needs it).
"""
from ume_jax.weights import hf_layers, hf_snapshot
from ume_jax.weights.hf_snapshot import ConfigValues, Tensors
from ume_jax.weights.errors import WeightsError
from ume_jax.weights.registry import register_snapshot


def image_size(c: ConfigValues) -> int:
  """The (square) image size of a vision config."""
  size = c.config.get("image_size", 224)
  if isinstance(size, (list, tuple)):
    if len(size) != 2 or size[0] != size[1]:
      raise WeightsError(f"{c.file}: image_size = {size!r}; ume_jax's"
                         " vision towers take square images.")
    size = size[0]
  return ConfigValues({"image_size": size}, c.file).get("image_size")


def architecture(c: ConfigValues) -> dict:
  """The ``vit`` encoder kwargs of a ViTConfig."""
  c.require("qkv_bias", True, True, "query/key/value with biases")
  return dict(image_size=image_size(c), patch_size=c.get("patch_size"),
              channels=c.get("num_channels", int, 3),
              width=c.get("hidden_size"), depth=c.get("num_hidden_layers"),
              heads=c.get("num_attention_heads"),
              mlp_dim=c.get("intermediate_size"),
              act=c.get("hidden_act", str, "gelu"),
              eps=c.get("layer_norm_eps", float, 1e-12))


def positions(arch: dict) -> int:
  """Rows of the position table: one per patch, and the [CLS] token."""
  return (arch["image_size"] // arch["patch_size"]) ** 2 + 1


def convert(t: Tensors, c: ConfigValues) -> dict:
  arch = architecture(c)
  width = arch["width"]
  p = hf_snapshot.prefix_of(t, "embeddings.cls_token", ("vit.", ""))
  e = f"{p}embeddings."
  tree = {
      "patch_embed": hf_layers.patch_embedding(
          t, f"{e}patch_embeddings.projection.weight", arch["channels"],
          width, arch["patch_size"]),
      "patch_bias": t.take(f"{e}patch_embeddings.projection.bias", (width,)),
      "cls_token": t.take(f"{e}cls_token", (1, 1, width)).reshape(width),
      "pos_embed": t.take(f"{e}position_embeddings",
                          (1, positions(arch), width)).reshape(-1, width),
      **hf_layers.layers(t, hf_layers.VIT, f"{p}encoder.layer.", arch),
      "ln_final": hf_layers.layer_norm(t, f"{p}layernorm", width),
  }
  if t.has(f"{p}pooler.dense.weight"):
    tree["pooler"] = hf_layers.dense(t, f"{p}pooler.dense", width, width)
  t.finish((p,) if p else ("",), r".*(position_ids|mask_token)",
           f"ViT encoder {c.file} describes")
  return tree


WEIGHTS = register_snapshot("hf_vit", "vit", convert, architecture)
