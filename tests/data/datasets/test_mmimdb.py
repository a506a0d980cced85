"""MM-IMDB builder: miniature fixtures in both on-disk forms, round trips,
error listings, and a tiny end-to-end run of configs/mmimdb.py:small."""
import json
import os

import h5py
import ml_collections
import numpy as np
import pytest
from PIL import Image

from ume_jax.data.datasets import mmimdb
from ume_jax.data.errors import DataError

N = 60
IDS = [f"{i:07d}" for i in range(1, N + 1)]
WORDS = ("love war space murder family ship ghost city king song dream"
         " race detective island winter robot").split()


def _movie(i):
  rng = np.random.default_rng(i)
  genres = sorted({mmimdb.GENRES[j] for j in rng.integers(0, 23, 2)})
  g = mmimdb.GENRES.index(genres[0])
  plot = " ".join([WORDS[g % len(WORDS)]] * 3
                  + list(rng.choice(WORDS, 10))) + ", \"quoted\" é."
  # Colour encodes the first genre, so labels are learnable from images.
  image = np.full((60, 40, 3), (g * 11) % 256, np.uint8)
  image[:, :, 1] = rng.integers(0, 256, (60, 40), dtype=np.uint8)
  return {"plot": [plot, "a second plot, ignored"], "genres": genres,
          "title": f"Movie {i}"}, image


def write_raw(root, layout="dataset"):
  img_dir, json_dir = {"dataset": ("dataset", "dataset"),
                       "map": ("images", "labels")}[layout]
  os.makedirs(root / img_dir, exist_ok=True)
  os.makedirs(root / json_dir, exist_ok=True)
  for i, movie in enumerate(IDS):
    meta, image = _movie(i)
    (root / json_dir / f"{movie}.json").write_text(json.dumps(meta))
    Image.fromarray(image).save(root / img_dir / f"{movie}.jpeg", quality=95)
  (root / "split.json").write_text(json.dumps(
      {"train": IDS[:36], "dev": IDS[36:44], "test": IDS[44:]}))
  return root


def write_hdf5(root):
  os.makedirs(root / "dataset", exist_ok=True)
  images, genres = [], []
  for i, movie in enumerate(IDS):
    meta, image = _movie(i)
    (root / "dataset" / f"{movie}.json").write_text(json.dumps(meta))
    images.append(np.array(Image.fromarray(image).resize((160, 256)))
                  .transpose(2, 0, 1))
    genres.append([g in meta["genres"] for g in mmimdb.GENRES])
  with h5py.File(root / mmimdb.HDF5, "w") as f:
    f["images"] = np.stack(images)
    f["genres"] = np.asarray(genres, np.int8)
    f["imdb_ids"] = np.array([m.encode() for m in IDS])
    f["features"] = np.zeros((N, 300), np.float32)  # present, unused
  return root


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory):
  return write_raw(tmp_path_factory.mktemp("mmimdb_raw"))


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
    meta, image = _movie(36 + j)
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
  tok = tmp_path / "tfds" / "mmimdb" / "tokenizer_wordpiece_200.json"
  mtime = tok.stat().st_mtime_ns
  mmimdb.load(_cfg(tmp_path / "tfds", raw_dir))
  assert tok.stat().st_mtime_ns == mtime


def test_map_layout_and_hdf5_form(tmp_path):
  ds = mmimdb.load(_cfg(tmp_path / "a", write_raw(tmp_path / "m", "map")))
  assert ds.spec.split_sizes["train"] == 36
  h = write_hdf5(tmp_path / "h")
  ds = mmimdb.load(_cfg(tmp_path / "b", h))
  # Fractions of MultiBench's 15552 / 18160 / 25959 boundaries of N = 60.
  assert ds.spec.split_sizes == {"train": 36, "validation": 6, "test": 18}
  rec = ds._source("test")[0]
  meta, _ = _movie(42)
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
  broken = write_raw(tmp_path / "broken")
  os.remove(broken / "dataset" / f"{IDS[50]}.jpeg")
  with pytest.raises(DataError, match=f"{IDS[50]}.jpeg"):
    mmimdb.load(_cfg(tmp_path / "tfds2", broken))


def test_small_config_end_to_end(raw_dir, tmp_path):
  from configs import mmimdb as mmimdb_config  # pylint: disable=g-import-not-at-top
  from ume_jax import experiment  # pylint: disable=g-import-not-at-top
  c = mmimdb_config.get_config("small")
  c.data.data_dir = str(tmp_path / "tfds")
  c.data.manual_dir = str(raw_dir)
  c.data.image_size = (16, 16)
  c.data.vocab_size = 200
  c.data.max_len = 16
  c.model.encoders.image.kwargs = dict(channels=(4,), strides=(4,),
                                       feature_dim=8)
  c.model.encoders.text.kwargs = dict(vocab_size=200, max_len=16, width=16,
                                      depth=1, heads=2, mlp_dim=16,
                                      feature_dim=8)
  for stage in (c.pretrain, c.scratch, c.finetune):
    stage.num_steps = 5
    stage.batch_size = 8
  c.eval.batch_size = 16
  c.eval.missing_rates = ()  # full + missing:<m> only: keeps it fast
  c.checkpoint.asynchronous = False
  experiment.run(c, str(tmp_path / "work"))
  with open(tmp_path / "work" / "results.json") as f:
    results = json.load(f)
  assert results["primary_metric"] == "f1_macro"
  methods = results["methods"]
  assert {"unimodal:image", "unimodal:text", "ume", "late_fusion",
          "late_fusion_pretrained", "mma", "ume_mma"} <= set(methods)
  scenarios = set(methods["mma"])
  assert {"full", "missing:image", "missing:text"} <= scenarios
  for m, by_scenario in methods.items():
    assert set(by_scenario) == scenarios, m
    for values in by_scenario.values():
      assert {"f1_micro", "f1_macro", "f1_samples", "f1_weighted"} <= set(
          values)
      assert all(np.isfinite(v) for v in values.values())
