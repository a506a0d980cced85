"""BERT, ViT and CLIP (both towers) from Hugging Face snapshot folders:
parity with transformers, and the full-size checkpoints' coverage.

Fixtures come from scripts/make_hf_fixtures.py: small random-initialised
models built and run by transformers itself (PyTorch, float32, CPU), saved
in snapshot form (``tests/fixtures/hf/<family>_tiny/``), and the names and
shapes of the full-size checkpoints' tensors with their config.json
(``tests/fixtures/hf/full_size/``).
"""
import json
import os

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ume_jax.models.registry import build_encoder
from ume_jax.weights import hf_bert, hf_clip, hf_snapshot, hf_vit, registry

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "hf")
# Both sides compute in float32 and sum in other orders (XLA vs torch):
# measured max abs differences 0.7e-6 to 2.4e-6 over every output below
# (hidden states, pooled and projected features; |x| up to ~4). 2e-5 leaves
# ~10x room for other CPUs and BLAS, and still catches porting errors: the
# wrong GELU or LayerNorm epsilon moves these outputs by 1e-4 or more.
ATOL = 2e-5


def _reference(family):
  return np.load(os.path.join(FIXTURES, f"{family}_tiny", "reference.npz"))


def _tower(weights, family, x, **kwargs):
  """(features, intermediates) of the snapshot's encoder on ``x``."""
  folder = os.path.join(FIXTURES, f"{family}_tiny")
  ws = registry.get(weights)
  model = build_encoder(ws.encoder, {**registry.architecture(weights, folder),
                                     **kwargs})
  params = registry.load(weights, folder)
  out, state = model.apply({"params": params}, jnp.asarray(x),
                           mutable=["intermediates"])
  return out, {k: v[0] for k, v in state["intermediates"].items()}


def _ids(ref):
  # Our pipelines right-pad with 0, not with the tokenizer's pad token.
  return ref["input_ids"] * ref["attention_mask"]


def _close(ours, theirs, where=None):
  ours, theirs = np.asarray(ours), np.asarray(theirs)
  if where is not None:   # padding positions: not part of the comparison
    ours, theirs = ours * where, theirs * where
  np.testing.assert_allclose(ours, theirs, atol=ATOL, rtol=0)


def test_bert_parity_hidden_and_pooler():
  ref = _reference("bert")
  valid = ref["attention_mask"][..., None] > 0
  out, inner = _tower("hf_bert", "bert", _ids(ref), pool="pooler")
  _close(inner["hidden"], ref["last_hidden_state"], valid)
  _close(out, ref["pooler_output"])
  cls, _ = _tower("hf_bert", "bert", _ids(ref))   # the default: [CLS] state
  _close(cls, ref["last_hidden_state"][:, 0])


def test_vit_parity_hidden_and_pooler():
  ref = _reference("vit")
  images = ref["pixel_values"].transpose(0, 2, 3, 1)   # NCHW -> NHWC
  out, inner = _tower("hf_vit", "vit", images, pool="pooler")
  _close(inner["hidden"], ref["last_hidden_state"])
  _close(out, ref["pooler_output"])


def test_clip_vision_parity():
  ref = _reference("clip")
  images = ref["pixel_values"].transpose(0, 2, 3, 1)
  out, inner = _tower("hf_clip_vision", "clip", images)
  _close(inner["encoded"], ref["vision_last_hidden_state"])
  _close(inner["pooled"], ref["vision_pooler_output"])
  _close(out, ref["image_embeds"])
  assert out.shape == (len(images), 24) and out.dtype == jnp.float32


def test_clip_text_parity():
  ref = _reference("clip")
  valid = ref["attention_mask"][..., None] > 0
  out, inner = _tower("hf_clip_text", "clip", _ids(ref))
  _close(inner["hidden"], ref["text_last_hidden_state"], valid)
  _close(inner["pooled"], ref["text_pooler_output"])
  _close(out, ref["text_embeds"])


def test_clip_text_pools_at_the_eos_id_when_not_legacy():
  ref = _reference("clip")
  ids = _ids(ref)
  eos = int(ids.max())    # <|endoftext|>: the vocabulary's last id
  legacy, _ = _tower("hf_clip_text", "clip", ids)
  by_id, _ = _tower("hf_clip_text", "clip", ids, eos_token_id=eos)
  _close(by_id, legacy)
  # Causal attention: what follows the end token, whatever its id, changes
  # nothing (id 0 is a real CLIP token, "!": padding is told by the mask).
  padded = np.where(ref["attention_mask"] == 0, 5, ids)
  shifted, _ = _tower("hf_clip_text", "clip", padded, eos_token_id=eos)
  _close(shifted, legacy)


# name -> (weight sets read from it, encoder kwargs beyond config.json, and
# the tensors no encoder takes: heads, the other parts of the model).
FULL_SIZE = {
    "bert-base-uncased": ((("hf_bert", {"pool": "pooler"}),),
                          r"cls\..*"),
    "vit-base-patch16-224": ((("hf_vit", {}),), r"classifier\..*"),
    "clip-vit-base-patch16": ((("hf_clip_vision", {}), ("hf_clip_text", {})),
                              r"logit_scale"),
    "clip-vit-base-patch32": ((("hf_clip_vision", {}), ("hf_clip_text", {})),
                              r"logit_scale"),
    "clip-vit-large-patch14": ((("hf_clip_vision", {}),
                                ("hf_clip_text", {})), r"logit_scale"),
}
CONVERT = {"hf_bert": hf_bert.convert, "hf_vit": hf_vit.convert,
           "hf_clip_vision": hf_clip.convert_vision,
           "hf_clip_text": hf_clip.convert_text}


def _shapes(tree):
  return jax.tree.map(lambda x: tuple(x.shape), tree)


@pytest.mark.parametrize("name", sorted(FULL_SIZE))
def test_full_size_checkpoint_is_covered_by_name_and_shape(name):
  """Every tensor of the full-size checkpoint is read into our parameter
  tree, with the shape the encoder built from its config.json has; no
  weights are allocated (shapes only, ``jax.eval_shape``)."""
  folder = os.path.join(FIXTURES, "full_size", name)
  with open(os.path.join(folder, "shapes.json")) as f:
    shapes = {k: jax.ShapeDtypeStruct(tuple(v), jnp.float32)
              for k, v in json.load(f).items()}
  sets, skipped = FULL_SIZE[name]
  config = hf_snapshot.config_values(folder, "test")
  taken = set()
  for weights, kwargs in sets:
    holder = {}

    def convert(t, weights=weights, holder=holder):
      tensors = hf_snapshot.Tensors(t, name)
      tree = CONVERT[weights](tensors, config)
      holder["untaken"] = tensors.untaken()
      return tree

    loaded = _shapes(jax.eval_shape(convert, shapes))
    taken |= set(shapes) - set(holder["untaken"])
    ws = registry.get(weights)
    arch = {**registry.architecture(weights, folder), **kwargs}
    model = build_encoder(ws.encoder, arch)
    x = (jnp.zeros((1, arch["image_size"], arch["image_size"], 3))
         if "image_size" in arch else jnp.zeros((1, 8), jnp.int32))
    ours = _shapes(flax.core.meta.unbox(
        jax.eval_shape(model.init, jax.random.key(0), x)["params"]))
    assert ours == loaded, weights
  import re
  left = {k for k in shapes if k not in taken
          and not re.fullmatch(skipped + r"|.*position_ids", k)}
  assert not left, f"{name}: tensors no encoder reads: {sorted(left)[:5]}"


def test_full_size_architectures_are_the_published_ones():
  def arch(name, weights):
    return registry.architecture(weights,
                                 os.path.join(FIXTURES, "full_size", name))
  b16 = arch("clip-vit-base-patch16", "hf_clip_vision")
  assert (b16["width"], b16["depth"], b16["heads"], b16["patch_size"],
          b16["image_size"], b16["projection_dim"]) == (768, 12, 12, 16,
                                                        224, 512)
  assert arch("clip-vit-base-patch32", "hf_clip_vision")["patch_size"] == 32
  l14 = arch("clip-vit-large-patch14", "hf_clip_vision")
  assert (l14["width"], l14["depth"], l14["patch_size"]) == (1024, 24, 14)
  text = arch("clip-vit-base-patch16", "hf_clip_text")
  assert (text["width"], text["heads"], text["max_positions"],
          text["eos_token_id"]) == (512, 8, 77, 2)
  bert = arch("bert-base-uncased", "hf_bert")
  assert (bert["vocab_size"], bert["width"], bert["depth"]) == (30522, 768, 12)
