"""clipart: the real packaged asset, its builder round trip, both modality
layouts, both tokenizers, determinism and the label-leakage rule."""

import json
import re
import shutil

import ml_collections
import numpy as np
import pytest

from ume_jax.data import DataError
from ume_jax.data.datasets import clipart
from ume_jax.data import get_dataset
from ume_jax.data.frontends import text_tokenizer


@pytest.fixture(scope="module")
def asset():
  return clipart.load_asset(clipart.PACKAGED_ASSET)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  d = tmp_path_factory.mktemp("clipart_tfds")
  clipart.prepare(d)
  return d


def _cfg(data_dir, **kw):
  return ml_collections.ConfigDict(dict(name="clipart", data_dir=str(data_dir),
                                        **kw))


def _first_batch(ds, split="test", size=64):
  return next(ds.eval_batches(split, size, None, process_index=0,
                              process_count=1))


def _words(s):
  return re.findall(r"[^\W_]+", s.lower())


def test_packaged_asset(asset):
  arrays, meta = asset
  assert meta["name"] == "clipart" and meta["version"] == clipart.VERSION
  assert tuple(meta["classes"]) == clipart.CLASSES
  sizes = {s: len(arrays[s]["id"]) for s in clipart.SPLITS}
  total = sum(sizes.values())
  assert 4000 < total < 6000
  for s, want in zip(clipart.SPLITS, (0.7, 0.1, 0.2)):
    assert abs(sizes[s] / total - want) < 0.02, sizes
    a = arrays[s]
    assert a["image"].shape == (sizes[s], 32, 32, 3)
    assert a["image"].dtype == np.uint8 and a["label"].dtype == np.uint8
    assert meta["splits"][s]["num_examples"] == sizes[s]
    # Stratified: every class in every split.
    assert set(np.unique(a["label"])) == set(range(len(clipart.CLASSES)))
  # Every drawing once: no file in two splits.
  ids = [f for s in clipart.SPLITS for f in arrays[s]["id"]]
  assert len(set(ids)) == total
  # The module's fixed normalisation matches the asset's train statistics.
  np.testing.assert_allclose(clipart.STATS[0], meta["image_stats"]["mean"],
                             atol=1e-3)
  np.testing.assert_allclose(clipart.STATS[1], meta["image_stats"]["std"],
                             atol=1e-3)
  assert meta["sources"]["packages"]["openclipart-png"]["version"] == (
      "1:0.18+dfsg-19")


def test_text_is_present(asset):
  arrays, _ = asset
  for s in clipart.SPLITS:
    a = arrays[s]
    assert all(t.strip() for t in a["title"])
    assert all(t.strip() for t in a["text"])
    assert np.mean([bool(k) for k in a["keywords"]]) > 0.75


def test_no_label_leakage_in_keywords(asset):
  arrays, meta = asset
  categories = meta["categories"]  # all 22 top-level folders
  assert len(categories) == 22 and set(clipart.CLASSES) <= set(categories)
  banned = {w for c in categories for w in _words(c)}
  banned |= {w[:-1] for w in banned if w.endswith("s")}
  for s in clipart.SPLITS:
    for kws, file in zip(arrays[s]["keywords"], arrays[s]["id"]):
      tokens = set(_words(kws))
      assert not tokens & banned, (file, kws)
      folders = {w for c in file.split("/")[:-1] for w in _words(c)}
      assert not tokens & folders, (file, kws)


def test_builder_round_trip(data_dir, asset):
  arrays, _ = asset
  builder = clipart.prepare(data_dir)  # already prepared: checked, reused
  for s in clipart.SPLITS:
    src = builder.as_data_source(s)
    assert len(src) == len(arrays[s]["id"])
    for i in (0, len(src) // 2, len(src) - 1):
      ex = src[i]
      np.testing.assert_array_equal(ex["image"], arrays[s]["image"][i])
      assert int(ex["label"]) == arrays[s]["label"][i]
      for k in ("text", "title", "keywords", "id"):
        assert ex[k].decode() == arrays[s][k][i]


def test_default_layout_wordpiece(data_dir, asset):
  arrays, _ = asset
  ds = get_dataset(_cfg(data_dir))
  spec = ds.spec
  assert spec.name == "clipart" and spec.modalities == ("image", "text")
  assert spec.input_shapes == {"image": (32, 32, 3), "text": (32,)}
  assert spec.input_dtypes == {"text": "int32"}
  assert spec.num_classes == 16 and not spec.multilabel
  b = _first_batch(ds)
  assert b["image"].dtype == np.float32 and b["image"].shape == (64, 32, 32, 3)
  assert b["text"].dtype == np.int32 and b["text"].shape == (64, 32)
  assert b["label"].dtype == np.int32 and b["present"].shape == (64, 2)
  np.testing.assert_array_equal(b["label"], arrays["test"]["label"][:64])
  assert (b["text"][:, 0] > 1).mean() > 0.9  # mostly known first words
  tok = data_dir / "clipart" / "tokenizer_wordpiece_2000.json"
  assert tok.is_file()
  mtime = tok.stat().st_mtime_ns
  get_dataset(_cfg(data_dir))
  assert tok.stat().st_mtime_ns == mtime  # cached, not retrained


def test_three_modalities(data_dir, asset):
  arrays, _ = asset
  ds = get_dataset(_cfg(data_dir, modalities=("image", "title", "keywords"),
                        max_len=16))
  assert ds.spec.modalities == ("image", "title", "keywords")
  assert ds.spec.input_shapes["keywords"] == (16,)
  b = _first_batch(ds, "validation", 32)
  assert set(b) >= {"image", "title", "keywords", "label", "present"}
  assert b["present"].shape == (32, 3) and "text" not in b
  tok = text_tokenizer.tokenizers.Tokenizer.from_file(
      str(data_dir / "clipart" / "tokenizer_wordpiece_2000.json"))
  want = text_tokenizer.encode(tok, arrays["validation"]["title"][:32], 16)
  np.testing.assert_array_equal(b["title"], want)
  has_kw = np.array([bool(k) for k in arrays["validation"]["keywords"][:32]])
  np.testing.assert_array_equal(b["keywords"].any(1), has_kw)


def test_minilm_tokenizer(data_dir, asset):
  minilm = pytest.importorskip("ume_jax.weights.minilm")
  arrays, _ = asset
  ds = get_dataset(_cfg(data_dir, tokenizer="minilm_l6", max_len=24))
  b = _first_batch(ds, "test", 16)
  want = np.array([e.ids for e in minilm.tokenizer(24).encode_batch(
      arrays["test"]["text"][:16])], np.int32)
  np.testing.assert_array_equal(b["text"], want)
  assert (b["text"][:, 0] == 101).all()  # [CLS]


def test_deterministic(data_dir, asset):
  arrays, _ = asset
  texts = arrays["train"]["text"]
  assert (text_tokenizer.train_tokenizer(texts, 2000).to_str()
          == text_tokenizer.train_tokenizer(texts, 2000).to_str())
  ds = get_dataset(_cfg(data_dir))
  batches = []
  for _ in range(2):
    with ds.train_iterator(32, None, seed=3, process_index=0,
                           process_count=1) as it:
      batches.append(next(it))
  for k in ("image", "text", "label", "index"):
    np.testing.assert_array_equal(batches[0][k], batches[1][k])


def test_vgg_front_end_feeds_vgg16_what_hed_preprocess_gives(data_dir,
                                                             asset):
  import jax
  from ume_jax.data.frontends import vgg_preprocess
  from ume_jax.models import vgg
  arrays, _ = asset
  b = _first_batch(get_dataset(_cfg(data_dir, image_normalization="vgg")),
                   size=8)
  raw = arrays["test"]["image"][:8]
  rgb_minus_mean = raw.astype(np.float64) - np.asarray(
      vgg_preprocess.HED_MEAN_BGR[::-1])
  np.testing.assert_allclose(b["image"], rgb_minus_mean, atol=1e-4)
  # The encoder built for pipeline inputs (channels="rgb") computes what
  # the original front end + encoder compute.
  rgb_model = vgg.VGG16(blocks=2, channels="rgb")
  params = rgb_model.init(jax.random.key(0), b["image"])
  got = rgb_model.apply(params, b["image"])
  want = vgg.VGG16(blocks=2).apply(params, vgg_preprocess.preprocess(raw))
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_imagenet_front_end_is_the_imagenet_normalisation(data_dir, asset):
  from ume_jax.data.frontends import imagenet
  arrays, _ = asset
  b = _first_batch(get_dataset(_cfg(data_dir,
                                    image_normalization="imagenet")), size=8)
  # 32 x 32 as stored: efficientnet_lite0 resizes on device.
  assert b["image"].shape == (8, 32, 32, 3)
  np.testing.assert_allclose(
      b["image"], imagenet.normalize(arrays["test"]["image"][:8]), atol=1e-5)


def test_bad_settings(data_dir):
  with pytest.raises(DataError, match="data.image_normalization"):
    get_dataset(_cfg(data_dir, image_normalization="caffe"))
  with pytest.raises(DataError, match="data.modalities"):
    get_dataset(_cfg(data_dir, modalities=("image", "audio")))
  with pytest.raises(DataError, match="data.tokenizer"):
    get_dataset(_cfg(data_dir, tokenizer="bpe"))


def test_bad_and_stale_assets(data_dir, tmp_path):
  with pytest.raises(DataError, match="does not exist"):
    clipart.prepare(tmp_path / "dd", tmp_path / "missing.npz")
  truncated = tmp_path / "truncated.npz"
  truncated.write_bytes(clipart.PACKAGED_ASSET.read_bytes()[:50000])
  with pytest.raises(DataError, match=str(truncated)):
    clipart.prepare(tmp_path / "dd", truncated)
  assert not (tmp_path / "dd" / "clipart").exists()
  # Another version of the asset: the prepared data is stale.
  with np.load(clipart.PACKAGED_ASSET, allow_pickle=False) as npz:
    arrays = {k: npz[k] for k in npz.files}
  meta = json.loads(str(arrays["meta"]))
  arrays["meta"] = np.array(json.dumps({**meta, "seed": -1}))
  other = tmp_path / "other.npz"
  np.savez(other, **arrays)
  copy = tmp_path / "copy"
  shutil.copytree(data_dir, copy)
  with pytest.raises(DataError, match="stale"):
    clipart.prepare(copy, other)
