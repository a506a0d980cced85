"""avmnist from the user's files: builder round trip, splits, input errors,
and configs/avmnist.py:small end to end on a miniature MultiBench folder.

The fixture has MultiBench's on-disk form with 300 train / 100 test rows;
validation is the last `VALIDATION` = 60 train rows (data.validation_size;
MultiBench's 5000 of 60000 would leave nothing of 300).
"""
import json
import os
import shutil
import sys

import ml_collections
import numpy as np
import pytest

from configs import avmnist as avmnist_config
from tests import fakes
from ume_jax import experiment
from ume_jax.config import common
from ume_jax.missing import scenarios
from ume_jax.data import DataError, get_dataset
from ume_jax.data.datasets import avmnist

N_TRAIN, N_TEST = fakes.AVMNIST_N_TRAIN, fakes.AVMNIST_N_TEST
VALIDATION = fakes.AVMNIST_VALIDATION
FILES = fakes.AVMNIST_FILES


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
  root = tmp_path_factory.mktemp("avmnist_raw")
  return root, fakes.write_avmnist(root)


@pytest.fixture(scope="module")
def prepared(raw, tmp_path_factory):
  root, arrays = raw
  data_dir = tmp_path_factory.mktemp("avmnist_tfds")
  return avmnist.prepare(data_dir, root, VALIDATION), data_dir


def _rows(arrays, split):
  """(source split, row range) of each prepared split."""
  if split == "train":
    return arrays["train"], range(0, N_TRAIN - VALIDATION)
  if split == "validation":
    return arrays["train"], range(N_TRAIN - VALIDATION, N_TRAIN)
  return arrays["test"], range(N_TEST)


def test_round_trip_and_splits(raw, prepared):
  _, arrays = raw
  builder, _ = prepared
  meta = builder.info.metadata
  assert meta["image_scale"] == 255.0  # floats in [0, 1] detected
  lo, hi = meta["audio_min_max"]
  assert lo == float(arrays["train"]["audio"].min())
  assert hi == float(arrays["train"]["audio"].max())
  sizes = {s: len(builder.as_data_source(s)) for s in avmnist.SPLITS}
  assert sizes == {"train": N_TRAIN - VALIDATION, "validation": VALIDATION,
                   "test": N_TEST}
  for split in avmnist.SPLITS:
    src = builder.as_data_source(split)
    a, rows = _rows(arrays, split)
    for i in (0, 1, len(src) - 1):
      ex, r = src[i], rows[i]
      assert ex["image"].shape == (28, 28, 1) and ex["image"].dtype == np.uint8
      assert ex["audio"].shape == (112, 112, 1) and ex["audio"].dtype == np.uint8
      np.testing.assert_array_equal(
          ex["image"][..., 0],
          np.rint(a["image"][r].reshape(28, 28) * 255).astype(np.uint8))
      want = np.clip(np.rint((a["audio"][r].astype(np.float64) - lo)
                             * 255 / (hi - lo)), 0, 255)
      np.testing.assert_array_equal(ex["audio"][..., 0], want.astype(np.uint8))
      # Quantisation error at most half a step of the train range.
      back = ex["audio"][..., 0] / 255 * (hi - lo) + lo
      if split != "test":
        assert np.abs(back - a["audio"][r]).max() <= (hi - lo) / 510 + 1e-4
      assert int(ex["label"]) == a["label"][r]
  assert "tensorflow" not in sys.modules


def test_image_in_0_255_kept_and_uint8(tmp_path):
  root = tmp_path / "raw"
  # MultiBench's own 0..255 floats.
  arrays = fakes.write_avmnist(root, image_scale=255.0)
  builder = avmnist.prepare(tmp_path / "tfds", root, VALIDATION)
  assert builder.info.metadata["image_scale"] == 1.0
  ex = builder.as_data_source("test")[3]
  np.testing.assert_array_equal(
      ex["image"][..., 0],
      np.rint(arrays["test"]["image"][3].reshape(28, 28)).astype(np.uint8))


def test_spec_and_registry(raw, prepared):
  root, _ = raw
  _, data_dir = prepared
  spec = get_dataset(ml_collections.ConfigDict(dict(
      name="avmnist", manual_dir=str(root), data_dir=str(data_dir),
      validation_size=VALIDATION))).spec
  assert spec.modalities == ("image", "audio")
  assert spec.input_shapes == {"image": (28, 28, 1), "audio": (112, 112, 1)}
  assert spec.num_classes == 10 and not spec.multilabel
  assert spec.split_sizes == {"train": N_TRAIN - VALIDATION,
                              "validation": VALIDATION, "test": N_TEST}


def test_missing_files_listed(raw, tmp_path):
  root, _ = raw
  partial = tmp_path / "partial"
  shutil.copytree(root, partial)
  os.remove(partial / "audio" / "test_data.npy")
  os.remove(partial / "train_labels.npy")
  for where in (partial, tmp_path / "absent"):
    with pytest.raises(DataError) as e:
      avmnist.prepare(tmp_path / "tfds", where, VALIDATION)
    msg = str(e.value)
    assert str(where) in msg
    for f in FILES:
      assert os.path.join(str(where), f) in msg, f
    assert "(N, 112, 112)" in msg and "(N, 784)" in msg
  assert "lacks 2 of the 6" in str(
      pytest.raises(DataError, avmnist.prepare, tmp_path / "tfds", partial,
                    VALIDATION).value)
  with pytest.raises(DataError, match="manual_dir"):
    avmnist.prepare(tmp_path / "tfds", None)
  assert not (tmp_path / "tfds" / "avmnist").exists()


def test_wrong_shape_and_lengths(raw, tmp_path):
  root, _ = raw
  bad = tmp_path / "bad"
  shutil.copytree(root, bad)
  np.save(bad / "audio" / "train_data.npy",
          np.zeros((N_TRAIN, 56, 56), np.float32))
  with pytest.raises(DataError) as e:
    avmnist.prepare(tmp_path / "tfds", bad, VALIDATION)
  msg = str(e.value)
  assert str(bad / "audio" / "train_data.npy") in msg
  assert f"({N_TRAIN}, 56, 56)" in msg and "(N, 112, 112)" in msg
  shutil.copy(root / "audio" / "train_data.npy", bad / "audio")
  np.save(bad / "test_labels.npy", np.zeros(N_TEST - 1, np.int64))
  with pytest.raises(DataError, match=f"test_labels.npy: {N_TEST - 1}"):
    avmnist.prepare(tmp_path / "tfds", bad, VALIDATION)
  np.save(bad / "test_labels.npy", np.full(N_TEST, 10, np.int64))
  with pytest.raises(DataError, match="labels span"):
    avmnist.prepare(tmp_path / "tfds", bad, VALIDATION)
  # Found while preparing: no partial dataset is left to block a rerun.
  assert not (tmp_path / "tfds" / "avmnist" / "1.0.0").exists()
  shutil.copy(root / "test_labels.npy", bad)
  assert len(avmnist.prepare(tmp_path / "tfds", bad, VALIDATION)
             .as_data_source("test")) == N_TEST
  with pytest.raises(DataError, match="validation_size = 300"):
    avmnist.prepare(tmp_path / "tfds2", root, N_TRAIN)


def test_stale_validation_size_refused(raw, prepared):
  root, _ = raw
  _, data_dir = prepared
  with pytest.raises(DataError, match="validation_size = 60, not 50"):
    avmnist.prepare(data_dir, root, 50)


def test_small_config_end_to_end(raw, tmp_path):
  root, _ = raw
  c = avmnist_config.get_config("small")
  c.data.manual_dir = str(root)
  c.data.data_dir = str(tmp_path / "tfds")
  c.data.validation_size = VALIDATION
  c.data.cache_in_memory = True
  tiny = dict(channels=(4, 8), strides=(4, 4), feature_dim=16)
  for m in ("image", "audio"):
    c.model.encoders[m].kwargs = dict(tiny)
  common.update_stages(c, num_steps=5, batch_size=16,
                       optim_values={"warmup_steps": 1})
  c.checkpoint.every_steps = 5
  c.eval.batch_size = 32
  c.eval.missing_rates = (1.0,)  # fewer scenarios: a faster test
  workdir = tmp_path / "work"
  experiment.run(c, str(workdir))
  with open(workdir / "results.json") as f:
    res = json.load(f)
  assert res["dataset"] == "avmnist"
  names = [s.name for s in scenarios.build_scenarios(("image", "audio"),
                                                     c.eval.missing_rates)]
  assert sorted(res["methods"]) == sorted(
      ["unimodal:image", "unimodal:audio", "ume", "late_fusion",
       "late_fusion_pretrained", "mma", "ume_mma", "best_per_pattern"])
  for method, row in res["methods"].items():
    assert list(row) == names, method
    for s in names:
      assert 0.0 <= row[s]["accuracy"] <= 1.0
