"""Hugging Face snapshot folders (ume_jax/weights/hf_snapshot.py): finding
them, refusing what cannot be read, and the architecture a run is built
with (ume_jax/weights/graft.py ``with_architectures``)."""
import json
import os
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from tests import fakes as fx
from ume_jax.config import common
from ume_jax.weights import WeightsError, graft, registry

TINY = os.path.join(os.path.dirname(__file__), "..", "fixtures", "hf")


def _copy(name, tmp_path):
  dest = tmp_path / name
  shutil.copytree(os.path.join(TINY, name), dest)
  return dest


def _flat(tree, prefix=""):
  out = {}
  for k, v in tree.items():
    out.update(_flat(v, f"{prefix}{k}/") if isinstance(v, dict)
               else {prefix + k: v})
  return out


def test_an_empty_or_absent_folder_says_what_a_snapshot_is(tmp_path):
  for path, needle in (("", "is not set"), (str(tmp_path / "nope"),
                                          "does not exist")):
    with pytest.raises(WeightsError, match=needle) as err:
      registry.load("hf_bert", path)
    assert "config.json and model.safetensors" in str(err.value)


def test_a_folder_missing_a_file_names_it(tmp_path):
  folder = _copy("bert_tiny", tmp_path)
  os.remove(folder / "config.json")
  with pytest.raises(WeightsError, match=r"a folder without config\.json"):
    registry.architecture("hf_bert", str(folder))
  folder = _copy("vit_tiny", tmp_path)
  os.remove(folder / "model.safetensors")
  with pytest.raises(WeightsError, match="neither model.safetensors"):
    registry.load("hf_vit", str(folder))


def test_a_pickle_checkpoint_is_refused_not_unpickled(tmp_path):
  folder = _copy("vit_tiny", tmp_path)
  os.remove(folder / "model.safetensors")
  # Would run code if unpickled; it must not even be opened.
  (folder / "pytorch_model.bin").write_bytes(b"\x80\x04cos\nsystem\n.")
  with pytest.raises(WeightsError) as err:
    registry.load("hf_vit", str(folder))
  assert "pytorch_model.bin" in str(err.value)
  assert "safe_serialization=True" in str(err.value)


def test_sharded_checkpoints_and_the_hub_cache_layout_read_the_same(
    tmp_path):
  reference = _flat(registry.load("hf_clip_text", os.path.join(
      TINY, "clip_tiny")))
  # Shards listed in model.safetensors.index.json.
  folder = _copy("clip_tiny", tmp_path)
  tensors = load_file(folder / "model.safetensors")
  os.remove(folder / "model.safetensors")
  keys = sorted(tensors)
  shards = {"model-00001-of-00002.safetensors": keys[::2],
            "model-00002-of-00002.safetensors": keys[1::2]}
  for name, part in shards.items():
    save_file({k: tensors[k] for k in part}, str(folder / name))
  (folder / "model.safetensors.index.json").write_text(json.dumps(
      {"weight_map": {k: n for n, part in shards.items() for k in part}}))
  sharded = _flat(registry.load("hf_clip_text", str(folder)))
  # The hub cache: models--org--name/{refs/main, snapshots/<commit>/}.
  cache = tmp_path / "models--openai--clip-tiny"
  shutil.copytree(os.path.join(TINY, "clip_tiny"),
                  cache / "snapshots" / "abc123")
  (cache / "refs").mkdir()
  (cache / "refs" / "main").write_text("abc123")
  cached = _flat(registry.load("hf_clip_text", str(cache)))
  for other in (sharded, cached):
    assert sorted(other) == sorted(reference)
    for k in reference:
      np.testing.assert_array_equal(other[k], reference[k])


def test_a_checkpoint_of_another_architecture_is_reported_whole(tmp_path):
  folder = _copy("bert_tiny", tmp_path)
  tensors = load_file(folder / "model.safetensors")
  del tensors["bert.encoder.layer.1.output.dense.bias"]
  tensors["bert.encoder.layer.2.output.dense.bias"] = np.zeros(32,
                                                               np.float32)
  tensors["bert.embeddings.LayerNorm.weight"] = np.ones(30, np.float32)
  save_file(tensors, str(folder / "model.safetensors"))
  with pytest.raises(WeightsError) as err:
    registry.load("hf_bert", str(folder))
  message = str(err.value)
  for part in ("1 missing", "bert.encoder.layer.1.output.dense.bias",
               "1 unexpected", "bert.encoder.layer.2.output.dense.bias",
               "bert.embeddings.LayerNorm.weight (30,) (expected (32,))",
               "model.safetensors", "config.json"):
    assert part in message, part


def test_unsupported_config_values_are_refused(tmp_path):
  folder = _copy("bert_tiny", tmp_path)
  config = json.loads((folder / "config.json").read_text())
  config["position_embedding_type"] = "relative_key"
  (folder / "config.json").write_text(json.dumps(config))
  with pytest.raises(WeightsError, match="position_embedding_type"):
    registry.architecture("hf_bert", str(folder))
  config["position_embedding_type"] = "absolute"
  del config["hidden_size"]
  (folder / "config.json").write_text(json.dumps(config))
  with pytest.raises(WeightsError, match="no 'hidden_size'"):
    registry.architecture("hf_bert", str(folder))


def _clip_config(weights_path, **text_kwargs):
  c = fx.tiny_config()
  c.model.encoders.image = common.encoder(
      "clip_vision", weights="hf_clip_vision", weights_path=weights_path)
  c.model.encoders.audio = common.encoder(
      "clip_text", text_kwargs, weights="hf_clip_text",
      weights_path=weights_path)
  return c


def test_the_architecture_is_read_into_the_config_and_kwargs_win():
  folder = os.path.join(TINY, "clip_tiny")
  c = _clip_config(folder, depth=1, max_len=12)
  resolved = graft.with_architectures(c)
  image = resolved.model.encoders.image.kwargs
  assert (image.width, image.depth, image.patch_size, image.image_size,
          image.projection_dim) == (48, 2, 8, 32, 24)
  text = resolved.model.encoders.audio.kwargs
  assert (text.width, text.depth, text.max_len, text.vocab_size) == (
      32, 1, 12, 679)
  assert dict(c.model.encoders.image.kwargs) == {}   # the input is untouched
  # Encoders without snapshot weights: the same config object back.
  plain = fx.tiny_config()
  assert graft.with_architectures(plain) is plain


def test_weights_for_another_encoder_are_refused_before_reading():
  c = _clip_config(os.path.join(TINY, "clip_tiny"))
  c.model.encoders.image.name = "vit"
  with pytest.raises(WeightsError, match="'clip_vision'"):
    graft.with_architectures(c)
