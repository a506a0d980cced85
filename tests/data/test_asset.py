"""Asset validation: good fake asset, the real asset if present, bad assets."""

import json

import numpy as np
import pytest

from tests import fakes
from ume_jax.data import DataError
from ume_jax.data import asset as asset_lib


def test_fake_asset_loads(fake_asset, fake_arrays):
  arrays, meta = asset_lib.load_asset(fake_asset, "1.0.0")
  assert meta["version"] == "1.0.0"
  for s in fakes.SPLITS:
    assert arrays[s]["image"].shape == (fakes.SIZES[s], 28, 28)
    np.testing.assert_array_equal(arrays[s]["audio"], fake_arrays[f"audio_{s}"])


@pytest.mark.skipif(not asset_lib.PACKAGED_ASSET.exists(),
                    reason="real asset not generated yet")
def test_real_asset():
  path = asset_lib.PACKAGED_ASSET
  with np.load(path, allow_pickle=False) as npz:
    keys = set(npz.files)
    want = {f"{f}_{s}" for f in asset_lib.FIELDS for s in asset_lib.SPLITS}
    assert want | {"meta"} <= keys
    meta = json.loads(str(npz["meta"]))
    for s in asset_lib.SPLITS:
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
  arrays, _ = asset_lib.load_asset(path, "1.0.0")  # The validator agrees.
  assert set(arrays) == set(asset_lib.SPLITS)


def _write(tmp_path, arrays):
  return fakes.write_asset(tmp_path / "bad.npz", arrays)


def _expect(path, *fragments):
  with pytest.raises(DataError) as e:
    asset_lib.load_asset(path, "1.0.0")
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
