"""MM-IMDB builder: miniature fixtures in both on-disk forms, round trips,
error listings, and a tiny end-to-end run of configs/mmimdb.py:small."""
import os

import ml_collections
import numpy as np
import pytest
from PIL import Image

from tests import fakes
from ume_jax.data.datasets import mmimdb
from ume_jax.data.errors import DataError
from ume_jax.data.frontends import image_processor

IDS = fakes.mmimdb_ids()


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory):
  return fakes.write_mmimdb_raw(tmp_path_factory.mktemp("mmimdb_raw"))


def _cfg(data_dir, manual_dir, **kw):
  return ml_collections.ConfigDict(dict(
      name="mmimdb", data_dir=str(data_dir), manual_dir=str(manual_dir),
      image_size=(16, 16), vocab_size=200, max_len=24, **kw))


def test_raw_round_trip(raw_dir, tmp_path):
  ds = mmimdb.load(_cfg(tmp_path / "tfds", raw_dir))
  assert ds.spec.multilabel and ds.spec.num_classes == 23
  assert ds.spec.split_sizes == {"train": 36, "validation": 8, "test": 16}
  assert ds.spec.input_dtypes == {"text": "int32"}
  src = ds._source("validation")
  for j in range(8):
    meta, image = fakes.mmimdb_movie(36 + j)
    rec = src[j]
    assert rec["id"].decode() == IDS[36 + j]
    assert rec["text"].decode() == meta["plot"][0]
    want = [g in meta["genres"] for g in mmimdb.GENRES]
    np.testing.assert_array_equal(rec["label"], np.asarray(want, np.uint8))
    assert rec["image"].shape == (16, 16, 3)
    assert abs(int(rec["image"][..., 0].mean()) - int(image[0, 0, 0])) <= 3
  b = next(ds.eval_batches("test", 16, None, process_index=0,
                           process_count=1))
  assert b["text"].dtype == np.int32 and b["text"].shape == (16, 24)
  assert (b["text"][:, 0] > 1).all()  # no [PAD]/[UNK] first token
  assert b["label"].dtype == np.float32 and b["label"].shape == (16, 23)
  assert b["image"].shape == (16, 16, 16, 3) and b["present"].all()
  # Tokenizer cached next to the prepared data, reused on reload.
  # (in the folder of its 16 x 16 posters: mmimdb/s16x16/)
  tok = (tmp_path / "tfds" / "mmimdb" / "s16x16"
         / "tokenizer_wordpiece_200.json")
  mtime = tok.stat().st_mtime_ns
  mmimdb.load(_cfg(tmp_path / "tfds", raw_dir))
  assert tok.stat().st_mtime_ns == mtime


def test_map_layout_and_hdf5_form(tmp_path):
  ds = mmimdb.load(_cfg(tmp_path / "a", fakes.write_mmimdb_raw(tmp_path / "m", "map")))
  assert ds.spec.split_sizes["train"] == 36
  h = fakes.write_mmimdb_hdf5(tmp_path / "h")
  ds = mmimdb.load(_cfg(tmp_path / "b", h))
  # Fractions of MultiBench's 15552 / 18160 / 25959 boundaries of N = 60.
  assert ds.spec.split_sizes == {"train": 36, "validation": 6, "test": 18}
  rec = ds._source("test")[0]
  meta, _ = fakes.mmimdb_movie(42)
  assert rec["id"].decode() == IDS[42]
  assert rec["text"].decode() == meta["plot"][0]
  want = [g in meta["genres"] for g in mmimdb.GENRES]
  np.testing.assert_array_equal(rec["label"], np.asarray(want, np.uint8))


def test_errors_list_both_forms(tmp_path):
  for manual in ("", tmp_path / "nothing", tmp_path):
    with pytest.raises(DataError) as e:
      mmimdb.load(_cfg(tmp_path / "tfds", manual))
    msg = str(e.value)
    assert "split.json" in msg and "{id}.jpeg" in msg and mmimdb.HDF5 in msg
  with pytest.raises(DataError, match=str(tmp_path)):
    mmimdb.load(_cfg(tmp_path / "tfds", tmp_path))
  broken = fakes.write_mmimdb_raw(tmp_path / "broken")
  os.remove(broken / "dataset" / f"{IDS[50]}.jpeg")
  with pytest.raises(DataError, match=f"{IDS[50]}.jpeg"):
    mmimdb.load(_cfg(tmp_path / "tfds2", broken))


def test_small_config_end_to_end(raw_dir, tmp_path):
  from configs import mmimdb as mmimdb_config  # pylint: disable=g-import-not-at-top
  from ume_jax import experiment  # pylint: disable=g-import-not-at-top
  # Missing-aware prompts' protocol (:map), as the field runs it.
  c = fakes.tiny_image_text_job(mmimdb_config.get_config("map,small"),
                                raw_dir, tmp_path / "tfds", vocab_size=200,
                                max_len=16)
  experiment.run(c, str(tmp_path / "work"))
  results = fakes.check_map_protocol_run(tmp_path / "work")
  assert results["primary_metric"] == "f1_macro"
  methods = results["methods"]
  assert fakes.all_methods(("image", "text")) <= set(methods)
  scenarios = set(methods["mma"])
  for m, by_scenario in methods.items():
    assert set(by_scenario) == scenarios, m
    for values in by_scenario.values():
      assert {"f1_micro", "f1_macro", "f1_samples", "f1_weighted"} <= set(
          values)
      assert all(np.isfinite(v) for v in values.values())


def test_max_bad_fraction_is_read_from_the_data_config(tmp_path):
  broken = fakes.write_mmimdb_raw(tmp_path / "broken", n=10)
  (broken / "dataset" / f"{IDS[0]}.json").write_text("{not json")
  # Default 0.01: one bad movie of the 6 of train is too many.
  with pytest.raises(DataError, match="data.max_bad_fraction = 0.01"):
    mmimdb.load(_cfg(tmp_path / "tfds", broken))
  ds = mmimdb.load(_cfg(tmp_path / "tfds", broken, max_bad_fraction=0.2))
  assert ds.spec.split_sizes["train"] == 5


def test_hdf5_posters_through_an_image_processor(tmp_path):
  """The hdf5 form's posters (arrays, not files) go through the same
  processor resize + crop as the raw form's JPEGs."""
  h = fakes.write_mmimdb_hdf5(tmp_path / "h")
  proc = fakes.write_processor_config(tmp_path / "proc")
  builder = mmimdb.prepare(tmp_path / "tfds", h, None, image_processor=proc)
  assert os.path.basename(os.path.dirname(builder.data_dir)) == (
      "s24x24-short24-bicubic")
  import h5py  # pylint: disable=g-import-not-at-top
  with h5py.File(h / mmimdb.HDF5, "r") as f:
    poster = np.transpose(f["images"][42], (1, 2, 0))  # test row 0
  rec = builder.as_data_source("test")[0]
  np.testing.assert_array_equal(
      rec["image"], image_processor.read(proc).geometry.apply(
          Image.fromarray(poster)))
