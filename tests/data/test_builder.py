"""tfds builder: round trip, data-dir checks, broken prepared datasets."""

import os
import shutil
import sys

import numpy as np
import pytest

from tests import fakes
from ume_jax.data import DataError
from ume_jax.data.datasets import avdigits


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
  from ume_jax.data import get_dataset  # pylint: disable=g-import-not-at-top
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


def _expect_dir_error(data_dir, asset, *fragments):
  with pytest.raises(DataError) as e:
    avdigits.prepare(data_dir, asset)
  assert str(data_dir) in str(e.value)
  for f in fragments:
    assert f in str(e.value)


def test_data_dir_is_a_file(tmp_path, fake_asset):
  f = tmp_path / "file"
  f.write_text("x")
  _expect_dir_error(f, fake_asset, "not a directory")
  _expect_dir_error(f / "sub", fake_asset, "not a writable directory")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root ignores permissions")
def test_data_dir_not_writable(tmp_path, fake_asset):
  d = tmp_path / "ro"
  d.mkdir()
  d.chmod(0o500)
  try:
    _expect_dir_error(d, fake_asset, "not a writable directory")
  finally:
    d.chmod(0o700)


def _copy(data_dir, tmp_path):
  dst = tmp_path / "copy"
  shutil.copytree(data_dir, dst)
  return dst, dst / "avdigits" / "1.0.0"


def test_truncated_records(data_dir, fake_asset, tmp_path):
  dst, ver = _copy(data_dir, tmp_path)
  f = ver / "avdigits-test.array_record-00000-of-00001"
  f.write_bytes(f.read_bytes()[:100])
  _expect_dir_error(dst, fake_asset, "'test'", "cannot be read")


def test_missing_records(data_dir, fake_asset, tmp_path):
  dst, ver = _copy(data_dir, tmp_path)
  (ver / "avdigits-validation.array_record-00000-of-00001").unlink()
  _expect_dir_error(dst, fake_asset, "'validation'", "cannot be read")


def test_partial_dataset(data_dir, fake_asset, tmp_path):
  dst, ver = _copy(data_dir, tmp_path)
  (ver / "dataset_info.json").unlink()
  _expect_dir_error(dst, fake_asset, "partial")


def test_corrupt_dataset_info(data_dir, fake_asset, tmp_path):
  dst, ver = _copy(data_dir, tmp_path)
  (ver / "dataset_info.json").write_text("{garbage")
  _expect_dir_error(dst, fake_asset, "unreadable")


def test_stale_dataset(data_dir, tmp_path):
  dst, _ = _copy(data_dir, tmp_path)
  other = fakes.write_asset(tmp_path / "other.npz", fakes.make_arrays(seed=1))
  _expect_dir_error(dst, other, "stale", str(other))
