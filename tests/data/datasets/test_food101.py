"""UPMC Food-101 builder: a miniature fixture in the on-disk form, round
trips, CSV quirks, error listing, and a tiny run of configs/food101.py:small."""
import json
import os

import ml_collections
import numpy as np
import pytest

from tests import fakes
from ume_jax.data.datasets import food101
from ume_jax.data.errors import DataError

CLASSES = fakes.FOOD_CLASSES


@pytest.fixture(scope="module")
def food_dir(tmp_path_factory):
  return fakes.write_food101(tmp_path_factory.mktemp("food101"))


def _cfg(data_dir, manual_dir, **kw):
  return ml_collections.ConfigDict(dict(
      name="food101", data_dir=str(data_dir), manual_dir=str(manual_dir),
      image_size=(16, 16), vocab_size=120, max_len=12, **kw))


def test_round_trip_and_validation_split(food_dir, tmp_path):
  ds = food101.load(_cfg(tmp_path / "tfds", food_dir))
  spec = ds.spec
  assert spec.num_classes == 4 and not spec.multilabel
  # 5% of 10 per class -> 1 per class to validation; one row per CSV skipped.
  assert spec.split_sizes == {"train": 36, "validation": 4, "test": 16}
  seen = {}
  for split in ("train", "validation"):
    src = ds._source(split)
    for i in range(len(src)):
      rec = src[i]
      name = rec["id"].decode()
      c = CLASSES.index(name.rsplit("_", 1)[0])
      assert int(rec["label"]) == c
      assert rec["text"].decode() == fakes.food_title(c, int(name.rsplit("_", 1)[1][:-4]))
      assert abs(int(rec["image"][..., 0].mean()) - (40 + 50 * c)) <= 3
      seen[name] = split
  assert len(seen) == 40 and sorted(seen.values()).count("validation") == 4
  # 16 x 16 is not the default size: its own folder, named by its shape.
  meta = json.loads((tmp_path / "tfds" / "upmc_food101" / "s16x16_v050"
                     / "1.0.0" / "metadata.json").read_text())
  assert meta["skipped_rows"]["missing_image"] == 2
  b = next(ds.eval_batches("test", 16, None, process_index=0,
                           process_count=1))
  assert b["text"].dtype == np.int32 and b["text"].shape == (16, 12)
  assert b["label"].dtype == np.int32 and b["image"].shape == (16, 16, 16, 3)
  # The same split again from a fresh preparation (deterministic).
  ds2 = food101.load(_cfg(tmp_path / "tfds2", food_dir))
  assert [ds2._source("validation")[i]["id"] for i in range(4)] == [
      ds._source("validation")[i]["id"] for i in range(4)]


def test_errors_list_the_layout(tmp_path):
  for manual in ("", tmp_path / "nothing", tmp_path):
    with pytest.raises(DataError) as e:
      food101.load(_cfg(tmp_path / "tfds", manual))
    msg = str(e.value)
    assert "texts/train_titles.csv" in msg and "images/train/<class>" in msg
  with pytest.raises(DataError, match="texts/test_titles.csv"):
    os.makedirs(tmp_path / "images" / "train")
    os.makedirs(tmp_path / "images" / "test")
    os.makedirs(tmp_path / "texts")
    (tmp_path / "texts" / "train_titles.csv").write_text("")
    food101.load(_cfg(tmp_path / "tfds", tmp_path))


def test_small_config_end_to_end(food_dir, tmp_path):
  from configs import food101 as food_config  # pylint: disable=g-import-not-at-top
  from ume_jax import experiment  # pylint: disable=g-import-not-at-top
  # Missing-aware prompts' protocol (:map), as the field runs it.
  c = fakes.tiny_image_text_job(food_config.get_config("map,small"),
                                food_dir, tmp_path / "tfds", vocab_size=120,
                                max_len=12)
  experiment.run(c, str(tmp_path / "work"))
  results = fakes.check_map_protocol_run(tmp_path / "work")
  methods = results["methods"]
  assert fakes.all_methods(("image", "text")) <= set(methods)
  for by_scenario in methods.values():
    assert set(by_scenario) == fakes.MAP_SCENARIOS
    for values in by_scenario.values():
      assert 0.0 <= values["accuracy"] <= 1.0 or 0 <= values["accuracy"] <= 100
