"""The ``:clip`` variants (ume_jax/config/clip.py): one snapshot folder
feeds both towers and both front ends, the towers stay frozen, and
``:map,clip,small`` runs every baseline end to end on MM-IMDB and Food-101."""
import importlib

import jax
import numpy as np
import pytest

from tests import fakes
from ume_jax import experiment
from ume_jax import methods as methods_lib
from ume_jax.config import clip
from ume_jax.weights import registry

WRITERS = {"mmimdb": fakes.write_mmimdb_raw, "food101": fakes.write_food101}


def _config(dataset, variant):
  return importlib.import_module(f"configs.{dataset}").get_config(variant)


@pytest.mark.parametrize("dataset", sorted(WRITERS))
def test_one_snapshot_value_sets_every_key_that_reads_it(dataset):
  c = _config(dataset, "map,clip")
  c.hf_snapshot = "/models/clip-vit-base-patch16"
  assert {c.model.encoders.image.weights_path,
          c.model.encoders.text.weights_path, c.data.tokenizer_path,
          c.data.image_processor} == {"/models/clip-vit-base-patch16"}
  assert (c.model.encoders.image.name, c.model.encoders.text.name) == (
      "clip_vision", "clip_text")
  assert c.data.max_len == 77 and c.data.tokenizer == "snapshot"
  for stage in ("pretrain", "scratch", "finetune"):
    assert c[stage].optim.lr_multipliers == ((r"(.*_)?encoder/.*", 0.0),)
  tuned = _config(dataset, "clip,tuned")
  assert tuned.finetune.optim.lr_multipliers == ((r"(.*_)?encoder/.*", 0.01),)
  with pytest.raises(ValueError, match="'tuned'"):
    _config(dataset, "tuned")


@pytest.mark.parametrize("dataset", sorted(WRITERS))
def test_clip_small_end_to_end_keeps_the_towers_frozen(dataset, tmp_path):
  raw = WRITERS[dataset](tmp_path / "raw")
  c = fakes.tiny_clip_towers_job(_config(dataset, "map,clip,small"), raw,
                                 tmp_path / "tfds")
  work = tmp_path / "work"
  results = experiment.run(c, str(work))
  # Every fusion method, the field's baselines included, in every scenario.
  assert tuple(c.methods) == clip.BASELINE_METHODS
  fakes.check_map_protocol_run(
      work, clip.BASELINE_METHODS + ("ume", "ume_mma", "ume_umt"))
  for method, by_scenario in results["methods"].items():
    for values in by_scenario.values():
      assert all(np.isfinite(v) for v in values.values()), method
  # Built with the snapshot's architecture, recorded as such.
  recorded = results["provenance"]["mma"]["config"]["model"]["encoders"]
  assert (recorded["image"]["kwargs"]["width"],
          recorded["image"]["kwargs"]["projection_dim"],
          recorded["text"]["kwargs"]["vocab_size"]) == (48, 24, 679)
  # Frozen: after every stage the towers are the snapshot's weights.
  s = experiment.setup(c)
  for name, directory in (("mma", work / "mma"),
                          ("prompts", work / "prompts"),
                          ("unimodal:image", work / "pretrain" / "image")):
    fused = name in s.methods.fusion
    method = s.methods.fusion[name] if fused else s.methods.unimodal["image"]
    params = experiment.restore_params(
        str(directory), method, methods_lib.abstract_params(method, s.mesh))
    tower = params["image_encoder" if fused else "encoder"]
    snapshot = registry.load("hf_clip_vision", fakes.CLIP_TINY)
    flat_ours = jax.tree_util.tree_flatten_with_path(tower)[0]
    for path, value in flat_ours:
      want = snapshot
      for k in path:
        want = want[k.key]
      np.testing.assert_array_equal(np.asarray(value), want)
