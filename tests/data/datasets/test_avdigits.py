"""avdigits: asset validation (good fake asset, the real asset if present,
bad assets), the builder round trip, and the PCA-degraded variant
(data.image_pca_components, configs/default.py:hard). The data-dir and prepared-dataset
checks shared by every dataset are in tests/data/test_prepare.py."""

import importlib.util
import json
import pathlib
import shutil
import sys

import numpy as np
import pytest

from tests import fakes
from ume_jax.data import DataError
from ume_jax.data import get_dataset
from ume_jax.data import prepare as prepare_lib
from ume_jax.data.datasets import avdigits


def test_fake_asset_loads(fake_asset, fake_arrays):
  arrays, meta = avdigits.load_asset(fake_asset, "1.0.0")
  assert meta["version"] == "1.0.0"
  for s in fakes.SPLITS:
    assert arrays[s]["image"].shape == (fakes.SIZES[s], 28, 28)
    np.testing.assert_array_equal(arrays[s]["audio"], fake_arrays[f"audio_{s}"])


@pytest.mark.skipif(not avdigits.PACKAGED_ASSET.exists(),
                    reason="real asset not generated yet")
def test_real_asset():
  path = avdigits.PACKAGED_ASSET
  with np.load(path, allow_pickle=False) as npz:
    keys = set(npz.files)
    want = {f"{f}_{s}" for f in avdigits.FIELDS for s in avdigits.SPLITS}
    assert want | {"meta"} <= keys
    meta = json.loads(str(npz["meta"]))
    for s in avdigits.SPLITS:
      n = npz[f"label_{s}"].shape[0]
      assert npz[f"image_{s}"].shape == (n, 28, 28)
      assert npz[f"image_{s}"].dtype == np.uint8
      assert npz[f"audio_{s}"].shape == (n, 40, 40)
      assert npz[f"audio_{s}"].dtype == np.uint8
      assert npz[f"label_{s}"].dtype == np.uint8
      assert npz[f"voice_{s}"].shape == (n,)
      assert npz[f"voice_{s}"].dtype == np.int16
      assert set(np.unique(npz[f"label_{s}"])) <= set(range(10))
      assert meta["splits"][s]["num_examples"] == n
  assert meta["name"] == "avdigits" and meta["version"] == "1.0.0"
  arrays, _ = avdigits.load_asset(path, "1.0.0")  # The validator agrees.
  assert set(arrays) == set(avdigits.SPLITS)


def _write(tmp_path, arrays):
  return fakes.write_asset(tmp_path / "bad.npz", arrays)


def _expect(path, *fragments):
  with pytest.raises(DataError) as e:
    avdigits.load_asset(path, "1.0.0")
  msg = str(e.value)
  assert str(path) in msg
  for f in fragments:
    assert f in msg
  return msg


def test_missing_file(tmp_path):
  _expect(tmp_path / "nope.npz", "does not exist")


@pytest.mark.parametrize("keep", [0.5, 0.95])
def test_truncated(tmp_path, fake_asset, keep):
  data = fake_asset.read_bytes()
  path = tmp_path / "trunc.npz"
  path.write_bytes(data[:int(len(data) * keep)])
  _expect(path, "truncated or corrupt")


def test_not_a_zip(tmp_path):
  path = tmp_path / "garbage.npz"
  path.write_bytes(b"hello" * 100)
  _expect(path, "truncated or corrupt")


def test_missing_key(tmp_path):
  a = fakes.make_arrays()
  del a["audio_test"]
  _expect(_write(tmp_path, a), "'audio_test'", "missing")


def test_missing_split(tmp_path):
  a = {k: v for k, v in fakes.make_arrays().items()
       if not k.endswith("_validation")}
  _expect(_write(tmp_path, a), "'image_validation'", "missing")


def test_wrong_dtype_and_shape(tmp_path):
  a = fakes.make_arrays()
  a["image_train"] = a["image_train"].astype(np.float32)
  _expect(_write(tmp_path, a), "'image_train'", "float32", "uint8")
  a = fakes.make_arrays()
  a["audio_test"] = a["audio_test"][:, :, :20]
  _expect(_write(tmp_path, a), "'audio_test'", "(30, 40, 20)", "'N', 40, 40")


def test_inconsistent_counts_and_labels(tmp_path):
  a = fakes.make_arrays()
  a["label_train"] = a["label_train"][:-1]
  _expect(_write(tmp_path, a), "'label_train'", "49")
  a = fakes.make_arrays()
  a["label_test"][3] = 10
  _expect(_write(tmp_path, a), "'label_test'", "0..9")


def test_bad_meta(tmp_path):
  a = fakes.make_arrays()
  a["meta"] = np.array("{not json")
  _expect(_write(tmp_path, a), "'meta'", "JSON")
  a = fakes.make_arrays()
  meta = json.loads(str(a["meta"]))
  meta["splits"]["test"]["num_examples"] = 31
  a["meta"] = np.array(json.dumps(meta))
  _expect(_write(tmp_path, a), "'meta'", "31")
  meta["splits"]["test"]["num_examples"] = 30
  meta["version"] = "2.0.0"
  a["meta"] = np.array(json.dumps(meta))
  _expect(_write(tmp_path, a), "'2.0.0'", "'1.0.0'")


def test_round_trip(data_dir, fake_asset, fake_arrays):
  builder = avdigits.prepare(data_dir, fake_asset)
  assert builder.info.version == "1.0.0"
  for s in fakes.SPLITS:
    src = builder.as_data_source(s)
    assert len(src) == fakes.SIZES[s]
    for i in range(len(src)):
      ex = src[i]
      assert ex["image"].shape == (28, 28, 1) and ex["image"].dtype == np.uint8
      assert ex["audio"].shape == (40, 40, 1) and ex["audio"].dtype == np.uint8
      np.testing.assert_array_equal(ex["image"][..., 0],
                                    fake_arrays[f"image_{s}"][i])
      np.testing.assert_array_equal(ex["audio"][..., 0],
                                    fake_arrays[f"audio_{s}"][i])
      assert int(ex["label"]) == fake_arrays[f"label_{s}"][i]
      assert int(ex["voice"]) == fake_arrays[f"voice_{s}"][i] == i
  assert "tensorflow" not in sys.modules


def test_spec(make_config):
  spec = get_dataset(make_config()).spec
  assert spec.name == "avdigits" and spec.modalities == ("image", "audio")
  assert spec.input_shapes == {"image": (28, 28, 1), "audio": (40, 40, 1)}
  assert spec.num_classes == 10 and not spec.multilabel
  assert spec.split_sizes == fakes.SIZES


def test_bad_asset_reported_before_writing(tmp_path):
  with pytest.raises(DataError, match="does not exist") as e:
    avdigits.prepare(tmp_path / "dd", tmp_path / "missing.npz")
  assert str(tmp_path / "missing.npz") in str(e.value)
  assert not (tmp_path / "dd" / "avdigits").exists()


def test_stale_dataset(data_dir, tmp_path):
  copy = tmp_path / "copy"
  shutil.copytree(data_dir, copy)
  other = fakes.write_asset(tmp_path / "other.npz", fakes.make_arrays(seed=1))
  with pytest.raises(DataError) as e:
    avdigits.prepare(copy, other)
  assert str(copy) in str(e.value)
  assert "so it is stale" in str(e.value) and str(other) in str(e.value)


# The harder regime: data.image_pca_components = k keeps each image's leading
# k principal components, fitted on the train split when preparing.

PCA_SIZES = {"train": 60, "validation": 20, "test": 20}
PCA_KS = (2, 7)


def _reference_pca(arrays, k):
  """Rank-k PCA reconstruction by another route than the module's SVD: the
  eigenvectors of the train images' scatter matrix. Returns (float
  reconstructions per split, fraction of the train variance kept)."""
  flat = lambda a: a.reshape(a.shape[0], -1).astype(np.float64)
  x = flat(arrays["image_train"])
  mean = x.mean(axis=0)
  w, v = np.linalg.eigh((x - mean).T @ (x - mean))   # ascending
  top = v[:, ::-1][:, :k]
  recon = {s: (mean + ((flat(arrays[f"image_{s}"]) - mean) @ top) @ top.T
               ).reshape(arrays[f"image_{s}"].shape)
           for s in fakes.SPLITS}
  return recon, float(w[::-1][:k].sum() / w.sum())


def _stored_images(builder, split):
  src = builder.as_data_source(split)
  return np.stack([src[i]["image"][..., 0] for i in range(len(src))])


@pytest.fixture(scope="module")
def pca_asset(tmp_path_factory):
  """A structured fake asset (class prototypes + noise) and its arrays."""
  path = tmp_path_factory.mktemp("pca_asset") / "avdigits.npz"
  fakes.make_learnable_asset(path, PCA_SIZES)
  with np.load(path) as npz:
    return path, dict(npz)


@pytest.fixture(scope="module")
def pca_data_dir(tmp_path_factory, pca_asset):
  """One data_dir holding the default dataset and a PCA one per k."""
  d = tmp_path_factory.mktemp("pca_tfds")
  builders = {0: avdigits.prepare(d, pca_asset[0])}
  for k in PCA_KS:
    builders[k] = avdigits.prepare(d, pca_asset[0], image_pca_components=k)
  return d, builders


@pytest.mark.parametrize("k", PCA_KS)
def test_pca_images_are_the_rank_k_reconstruction(pca_asset, pca_data_dir, k):
  arrays = pca_asset[1]
  builder = pca_data_dir[1][k]
  recon, kept = _reference_pca(arrays, k)
  for s in fakes.SPLITS:
    got = _stored_images(builder, s)
    want = np.clip(np.rint(recon[s]), 0, 255).astype(np.uint8)
    # Exact, except where the two float routes may round a value lying
    # within 1e-6 of .5 to different sides.
    tie = np.abs(recon[s] - np.floor(recon[s]) - 0.5) < 1e-6
    diff = np.abs(got.astype(int) - want.astype(int))
    assert np.all(diff[~tie] == 0) and np.all(diff <= 1)
    assert got.shape == arrays[f"image_{s}"].shape and got.dtype == np.uint8
    # Degraded: not the originals (and not just rounding away from them).
    assert np.abs(got.astype(int) - arrays[f"image_{s}"]).mean() > 5
    # Only the images change.
    src = builder.as_data_source(s)
    for i in (0, len(src) - 1):
      np.testing.assert_array_equal(src[i]["audio"][..., 0],
                                    arrays[f"audio_{s}"][i])
      assert int(src[i]["label"]) == arrays[f"label_{s}"][i]
  meta = builder.info.metadata
  assert meta["image_pca_components"] == k
  assert meta["image_pca_variance_kept"] == pytest.approx(kept, rel=1e-9)
  assert meta["asset_sha256"] == prepare_lib.sha256(pca_asset[0])


def test_pca_datasets_have_folders_of_their_own(pca_asset, pca_data_dir):
  d, builders = pca_data_dir
  assert builders[0].data_dir == str(d / "avdigits" / "1.0.0")
  for k in PCA_KS:
    assert builders[k].data_dir == str(d / "avdigits" / f"pca{k}" / "1.0.0")
  # The default dataset still loads from the same data_dir, as before:
  # the asset's images, no PCA metadata.
  again = avdigits.prepare(d, pca_asset[0])
  assert again.data_dir == builders[0].data_dir
  assert "image_pca_components" not in again.info.metadata
  for s in fakes.SPLITS:
    np.testing.assert_array_equal(_stored_images(again, s),
                                  pca_asset[1][f"image_{s}"])
  # And a PCA one is found prepared again (nothing rewritten).
  mtime = (d / "avdigits" / "pca2" / "1.0.0" / "dataset_info.json").stat()
  avdigits.prepare(d, pca_asset[0], image_pca_components=2)
  assert (d / "avdigits" / "pca2" / "1.0.0" /
          "dataset_info.json").stat().st_mtime_ns == mtime.st_mtime_ns


def test_pca_variance_kept_grows_with_k(pca_asset, pca_data_dir):
  arrays, _ = avdigits.load_asset(pca_asset[0], "1.0.0")
  kept = [avdigits.pca_images(arrays, k)[1] for k in (1, 2, 4, 7, 20, 59)]
  assert all(0 < a < b for a, b in zip(kept, kept[1:]))
  assert kept[-1] == pytest.approx(1.0)
  meta = [pca_data_dir[1][k].info.metadata["image_pca_variance_kept"]
          for k in PCA_KS]
  assert meta == [kept[1], kept[3]]   # k = 2, 7
  # More components, closer to the originals.
  err = [np.abs(avdigits.pca_images(arrays, k)[0]["test"]["image"]
                .astype(int) - arrays["test"]["image"]).mean()
         for k in (1, 7, 59)]
  assert err[0] > err[1] > err[2]


def test_pca_preparation_is_deterministic(tmp_path, pca_asset, pca_data_dir):
  """Prepared again elsewhere: byte-identical images and the same metadata.
  (The ArrayRecord files' bytes are not compared: tfds serialises each
  example's features in protobuf map order, which varies between processes
  for the default dataset too.)"""
  k = PCA_KS[0]
  first = pca_data_dir[1][k]
  second = avdigits.prepare(tmp_path, pca_asset[0], image_pca_components=k)
  assert second.data_dir != first.data_dir
  for s in fakes.SPLITS:
    a, b = _stored_images(first, s), _stored_images(second, s)
    assert a.tobytes() == b.tobytes()
  assert dict(second.info.metadata) == dict(first.info.metadata)
  arrays, _ = avdigits.load_asset(pca_asset[0], "1.0.0")
  once, twice = avdigits.pca_images(arrays, k), avdigits.pca_images(arrays, k)
  assert once[1] == twice[1]
  for s in fakes.SPLITS:
    assert once[0][s]["image"].tobytes() == twice[0][s]["image"].tobytes()


def test_get_dataset_reads_the_pca_dataset(make_config, pca_asset,
                                           pca_data_dir):
  d, builders = pca_data_dir
  ds = get_dataset(make_config(data_dir=str(d), asset_path=str(pca_asset[0]),
                               image_pca_components=PCA_KS[0]))
  assert ds.spec.split_sizes == PCA_SIZES
  assert ds.spec.input_shapes["image"] == (28, 28, 1)


@pytest.mark.parametrize("value", [-1, 2.5, 784, 1000, "8", True, [4]])
def test_bad_pca_components_refused_before_preparing(tmp_path, make_config,
                                                     fake_asset, value):
  for call in (
      lambda: avdigits.prepare(tmp_path, fake_asset,
                               image_pca_components=value),
      lambda: get_dataset(make_config(data_dir=str(tmp_path),
                                      image_pca_components=value))):
    with pytest.raises(DataError) as e:
      call()
    msg = str(e.value)
    assert "data.image_pca_components" in msg and repr(value) in msg
    assert "whole number in 0..783" in msg and "\n" not in msg
  assert list(tmp_path.iterdir()) == []


def test_more_pca_components_than_train_directions(tmp_path, fake_asset):
  """The fake train split has 50 images: 49 directions of variance."""
  with pytest.raises(DataError, match="vary in only 49 directions") as e:
    avdigits.prepare(tmp_path, fake_asset, image_pca_components=50)
  assert "data.image_pca_components = 50" in str(e.value)
  assert not (tmp_path / "avdigits").exists()
  assert avdigits.prepare(tmp_path, fake_asset, image_pca_components=49)


@pytest.mark.parametrize("value", [0, None, 0.0])
def test_pca_off_is_the_default_dataset(data_dir, fake_asset, value):
  builder = avdigits.prepare(data_dir, fake_asset, image_pca_components=value)
  assert builder.data_dir == str(data_dir / "avdigits" / "1.0.0")


def test_default_config_hard_variant():
  path = pathlib.Path(__file__).parents[3] / "configs" / "default.py"
  spec = importlib.util.spec_from_file_location("_default_cfg", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  k = module.HARD_IMAGE_PCA_COMPONENTS
  assert 0 < k < 784
  assert "image_pca_components" not in module.get_config().data
  assert "image_pca_components" not in module.get_config("small").data
  for variant in ("hard", "hard,small"):
    assert module.get_config(variant).data.image_pca_components == k
  small = module.get_config("hard,small").to_dict()
  del small["data"]["image_pca_components"]
  assert small == module.get_config("small").to_dict()
  with pytest.raises(ValueError, match="hard"):
    module.get_config("harder")
