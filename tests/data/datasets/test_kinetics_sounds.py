"""Kinetics-Sounds from extracted clips (ume_jax/data/datasets/
kinetics_sounds.py) on a miniature fixture in OGM-GE's list format, plus a
tiny end-to-end run."""
import json
import os

import ml_collections
import numpy as np
import pytest

from tests import fakes
from ume_jax import experiment
from ume_jax.data import registry
from ume_jax.data.datasets import kinetics_sounds as ks
from ume_jax.data.datasets import video_clips
from ume_jax.data.errors import DataError

OPTIONS = fakes.CLIP_OPTIONS


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("ks_clips")
  fakes.write_kinetics_sounds(root)
  return root


def test_round_trip_and_validation_carve(fixture_dir, tmp_path):
  dataset = registry.get_dataset(ml_collections.ConfigDict(dict(
      name="kinetics_sounds", manual_dir=str(fixture_dir),
      data_dir=str(tmp_path), validation_fraction=0.25, **OPTIONS)))
  assert dataset.spec.num_classes == 31
  assert dataset.spec.split_sizes == {"train": 24, "validation": 8, "test": 8}
  b = ks.prepare(tmp_path, fixture_dir, video_clips.ClipOptions(
      **OPTIONS, validation_fraction=0.25))
  test = b.as_data_source("test")
  assert [int(test[i]["label"]) for i in range(3)] == [30, 0, 7]  # i % 3, i from 32
  assert test[0]["visual"].shape == (2, 16, 16, 3)
  assert test[0]["audio"].shape == (24, 16, 1)
  # The carve depends on clip ids only, not on the list's order.
  clips = ks.parse_list(fixture_dir / "my_train.txt")
  _, val = ks.carve_validation(clips, 0.25)
  _, val_rev = ks.carve_validation(clips[::-1], 0.25)
  assert sorted(c.clip_id for c in val) == sorted(c.clip_id for c in val_rev)
  assert len(val) == 8


def test_errors(tmp_path):
  root = tmp_path / "clips"
  root.mkdir()
  with pytest.raises(DataError, match=r"lacks \['my_train.txt'") as e:
    ks.prepare(tmp_path / "d", root)
  assert "audio/{clip_id}.wav" in str(e.value)  # the expected layout
  fakes.write_kinetics_sounds(root)
  (root / "my_test.txt").write_text("abc_1,10,31\n")
  with pytest.raises(DataError, match=r"my_test.txt' line 1.*not in 0..30"):
    ks.prepare(tmp_path / "d", root, video_clips.ClipOptions(**OPTIONS))


def test_small_config_end_to_end(fixture_dir, tmp_path):
  from configs import kinetics_sounds as ks_config  # pylint: disable=g-import-not-at-top
  c = fakes.tiny_clip_job(ks_config.get_config("small"), fixture_dir,
                          tmp_path / "tfds")
  workdir = tmp_path / "work"
  experiment.run(c, str(workdir))
  with open(os.path.join(workdir, "results.json")) as f:
    results = json.load(f)
  assert results["dataset"] == "kinetics_sounds"
  assert set(results["methods"]) == fakes.all_methods(("audio", "visual"))
  scenarios = set(results["methods"]["ume"])
  assert {"full", "missing:audio", "missing:visual"} <= scenarios
  assert all(set(row) == scenarios for row in results["methods"].values())
  assert np.isfinite(results["methods"]["mma"]["full"]["accuracy"])
