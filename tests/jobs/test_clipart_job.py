"""configs/clipart.py end to end on the embedded vision-language set: the
pre-trained MiniLM text encoder and EfficientNet-Lite0 image encoder really
start (and, frozen, stay) at the packages' weights; the three-modality
variant evaluates every subset."""
import itertools
import os

import jax
import numpy as np
import pytest

from configs import clipart as clipart_config
from tests import fakes
from ume_jax import experiment, methods
from ume_jax.infra import mesh as mesh_lib
from ume_jax import data as data_lib
from ume_jax import weights


def _run(variant, tmp_path_factory, name):
  config = clipart_config.get_config(variant)
  config.data.data_dir = str(tmp_path_factory.mktemp("tfds"))
  workdir = str(tmp_path_factory.mktemp(name))
  return config, workdir, experiment.run(config, workdir)


@pytest.fixture(scope="module")
def two(tmp_path_factory):
  return _run("small", tmp_path_factory, "clipart")


@pytest.fixture(scope="module")
def three(tmp_path_factory):
  return _run("three,small", tmp_path_factory, "clipart3")


def _params(config, workdir, run_dir, method):
  mesh = mesh_lib.build_mesh(config.mesh)
  return experiment.restore_params(os.path.join(workdir, run_dir), method,
                                methods.abstract_params(method, mesh))


def test_frozen_pretrained_layers_are_the_package_weights(two):
  config, workdir, _ = two
  spec = data_lib.get_dataset(config.data).spec
  want = weights.load("minilm_l6")
  uni = fakes.unimodal(config, spec, "text")
  text = _params(config, workdir, "pretrain/text", uni)["encoder"]
  mma = _params(config, workdir, "mma",
                fakes.fusion(config, spec, "mma"))["text_encoder"]
  for got in (text, mma):
    # Frozen (embeddings, layer0-1 of the 2 kept): exactly the file's.
    for key in ("word_embed", "layer0", "layer1"):
      jax.tree.map(lambda a, b: np.testing.assert_array_equal(
          np.asarray(a), b), got[key], want[key])
  # The late_fusion baseline grafted the same weights before training.
  lf = _params(config, workdir, "late_fusion",
               fakes.fusion(config, spec, "late_fusion"))
  np.testing.assert_array_equal(np.asarray(lf["text_encoder"]["pos_embed"]),
                                want["pos_embed"])


def test_frozen_image_blocks_are_the_package_weights(two):
  config, workdir, _ = two
  spec = data_lib.get_dataset(config.data).spec
  want = weights.load("efficientnet_lite0")
  uni = _params(config, workdir, "pretrain/image",
                fakes.unimodal(config, spec, "image"))["encoder"]
  mma = _params(config, workdir, "mma",
                fakes.fusion(config, spec, "mma"))["image_encoder"]
  kept = [f"mbconv{i}" for i in range(clipart_config.EFFNET_SMALL_BLOCKS)]
  first_trained = clipart_config.EFFNET_SMALL_FIRST_TRAINED
  assert sorted(uni) == sorted(["stem"] + kept)
  for got in (uni, mma):
    # Frozen (the stem and the lower blocks): exactly the file's.
    for key in ["stem"] + kept[:first_trained]:
      jax.tree.map(lambda a, b: np.testing.assert_array_equal(
          np.asarray(a), b), got[key], want[key])
    # The blocks above trained (at 1/10 of the rate).
    for key in kept[first_trained:]:
      assert not np.array_equal(np.asarray(got[key]["project"]["kernel"]),
                                want[key]["project"]["kernel"])


def test_text_is_learned_and_results_cover_both_modalities(two):
  _, _, results = two
  assert set(results["ceiling"]) == {"missing:image", "missing:text"}
  chance = 1 / 16
  text_only = results["methods"]["unimodal:text"]["full"]["accuracy"]
  assert text_only > 2 * chance
  # With the image missing, the ensemble is the text model alone.
  assert (results["methods"]["ume"]["missing:image"]["accuracy"]
          == pytest.approx(text_only))


def test_three_modalities_every_subset_scenario(three):
  config, workdir, results = three
  mods = ("image", "title", "keywords")
  expected = {"full"} | {
      "missing:" + "+".join(absent)
      for size in (1, 2) for absent in itertools.combinations(mods, size)}
  # Every modality and the spread type (each missing example lacks one).
  expected |= {f"missing_rate:{t}:1" for t in mods + ("mixed",)}
  for method, by_scenario in results["methods"].items():
    assert set(by_scenario) == expected, method
  assert set(results["ceiling"]) == {
      s for s in expected if not s.startswith(("full", "missing_rate"))}
  unimodal = {m: results["methods"][f"unimodal:{m}"]["full"]["accuracy"]
              for m in mods}
  # With two of three missing, the ceiling is the one that remains; with
  # one missing, the better of the two left.
  assert results["ceiling"]["missing:image+title"] == unimodal["keywords"]
  assert results["ceiling"]["missing:keywords"] == max(unimodal["image"],
                                                       unimodal["title"])
  # UME with only one modality left is that modality's model.
  assert (results["methods"]["ume"]["missing:title+keywords"]["accuracy"]
          == pytest.approx(unimodal["image"]))
  with open(os.path.join(workdir, "results.md")) as f:
    assert "missing:image+title" in f.read()


def test_frozen_prefixes_were_cached_and_recorded(two):
  """configs/clipart.py trains from cached frozen prefixes: the whole text
  tower (both of :small's layers are frozen) and the stem + lower image
  blocks, one entry each, shared by every stage and recorded with the
  results they produced."""
  _, _, results = two
  records = {name: results["provenance"][name]["frozen_prefix"]
             for name in ("unimodal:image", "unimodal:text", "mma",
                          "late_fusion")}
  first = clipart_config.EFFNET_SMALL_FIRST_TRAINED
  # Units: stem, then block i is unit 1 + i.
  assert records["unimodal:image"]["image"]["first_trained_unit"] == first + 1
  assert records["unimodal:text"]["text"]["first_trained_unit"] == 4
  for m, uni in (("image", "unimodal:image"), ("text", "unimodal:text")):
    # Frozen layers never move: pre-training and both fusion stages read
    # the same entry.
    assert (records["mma"][m]["key"] == records["late_fusion"][m]["key"]
            == records[uni][m]["key"])
