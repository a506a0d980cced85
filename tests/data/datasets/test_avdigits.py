"""avdigits: asset validation (good fake asset, the real asset if present,
bad assets) and the builder round trip. The data-dir and prepared-dataset
checks shared by every dataset are in tests/data/test_prepare.py."""

import json
import shutil
import sys

import numpy as np
import pytest

from tests import fakes
from ume_jax.data import DataError
from ume_jax.data import get_dataset
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
