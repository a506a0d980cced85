"""AVE from extracted clips (ume_jax/data/datasets/ave.py, video_clips.py),
on a miniature fixture in exactly the on-disk form scripts/extract_av_clips.py
writes, with either audio front end (fbank for the ResNet, Whisper's log-mel
for the pre-trained Whisper encoder), and tiny end-to-end runs of the whole
method."""
import json
import os

import jax
import ml_collections
import numpy as np
import pytest

from tests import fakes
from ume_jax import experiment, methods
from ume_jax.infra import mesh as mesh_lib
from ume_jax import weights
from ume_jax.data import registry
from ume_jax.data.datasets import ave, video_clips
from ume_jax.data.frontends import audio_features, log_mel
from ume_jax.data.errors import DataError

OPTIONS = fakes.CLIP_OPTIONS
WHISPER = dict(audio_front_end="whisper", audio_seconds=2)  # (80, 200)
CATEGORIES = fakes.AVE_CATEGORIES


def _data_config(manual_dir, data_dir, **kw):
  return ml_collections.ConfigDict(dict(
      name="ave", manual_dir=str(manual_dir), data_dir=str(data_dir),
      worker_count=0, **OPTIONS) | kw)


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("ave_clips")
  fakes.write_ave(root)
  return root


def test_round_trip(fixture_dir, tmp_path):
  dataset = registry.get_dataset(_data_config(fixture_dir, tmp_path))
  spec = dataset.spec
  assert spec.modalities == ("audio", "visual")
  assert spec.input_shapes == {"audio": (24, 16, 1), "visual": (2, 16, 16, 3)}
  assert spec.num_classes == 28
  assert spec.split_sizes == {"train": 24, "validation": 8, "test": 8}
  builder = ave.prepare(tmp_path, fixture_dir,
                        video_clips.ClipOptions(**OPTIONS))
  # The fbank default keeps the name it had before the whisper front end,
  # so datasets prepared then are still found.
  assert builder.data_dir.endswith(os.path.join("ave", "f2_s16_m16_a24",
                                                "1.0.0"))
  assert builder.info.metadata["classes"] == sorted(CATEGORIES)
  rec = builder.as_data_source("train")[1]
  # Record order = list order; label = index in the sorted categories.
  assert rec["label"] == sorted(CATEGORIES).index(CATEGORIES[1])
  assert rec["visual"].dtype == np.uint8 and rec["visual"].shape == (2, 16, 16, 3)
  assert abs(int(rec["visual"].mean()) - 70) < 12  # colour 40*1+20 (+noise)
  expected = audio_features.wav_to_uint8_fbank(
      fixture_dir / "audio" / "vid00000000_x_5_10.wav",
      video_clips.ClipOptions(**OPTIONS).fbank)
  np.testing.assert_array_equal(rec["audio"][..., 0], expected)


def test_whisper_front_end(fixture_dir, tmp_path):
  dataset = registry.get_dataset(_data_config(fixture_dir, tmp_path,
                                              **WHISPER))
  spec = dataset.spec
  assert spec.input_shapes == {"audio": (80, 200), "visual": (2, 16, 16, 3)}
  assert spec.input_dtypes.get("audio", "float32") == "float32"
  options = video_clips.ClipOptions(**OPTIONS, **WHISPER)
  builder = ave.prepare(tmp_path, fixture_dir, options)
  fbank = ave.prepare(tmp_path, fixture_dir, video_clips.ClipOptions(**OPTIONS))
  # Each front end has its own prepared dataset, side by side.
  assert builder.data_dir.endswith(os.path.join("f2_s16_whisper200", "1.0.0"))
  assert fbank.data_dir != builder.data_dir
  assert builder.info.metadata["options"]["audio_front_end"] == "whisper"
  rec = builder.as_data_source("train")[1]
  assert rec["audio"].dtype == np.uint8 and rec["audio"].shape == (80, 200)
  # What the encoder reads: the pipeline's float32 batch is Whisper's
  # log-mel of the (0.25-s, silence-padded) wav, within half a uint8 step
  # of 3.5 / 255 (plus float32 rounding).
  batch = next(dataset.eval_batches("train", 8, None, process_index=0,
                                    process_count=1))
  wave = audio_features.read_wav(fixture_dir / "audio" /
                                 "vid00000000_x_5_10.wav")
  want = log_mel.log_mel(wave, 2 * log_mel.SAMPLE_RATE)
  assert batch["audio"].dtype == np.float32
  np.testing.assert_allclose(batch["audio"][1], want, rtol=0,
                             atol=3.5 / 255 / 2 + 1e-5)
  assert want.min() < 0 < want.max()  # a real signal, not all floor


@pytest.mark.parametrize("bad, message", [
    (dict(audio_front_end="mfcc"), r"audio_front_end = 'mfcc'"),
    (dict(WHISPER, audio_seconds=0.25), r"audio_seconds = 0.25"),
    (dict(WHISPER, audio_seconds=31), r"audio_seconds = 31"),
])
def test_bad_audio_options(fixture_dir, tmp_path, bad, message):
  with pytest.raises(DataError, match=message):
    registry.get_dataset(_data_config(fixture_dir, tmp_path, **bad))


def test_missing_clips_skipped_then_refused(tmp_path):
  root = tmp_path / "clips"
  ids = fakes.write_ave(root)
  (root / "audio" / f"{ids['trainSet'][0]}.wav").unlink()
  builder = ave.prepare(tmp_path / "a", root, video_clips.ClipOptions(
      **OPTIONS, max_missing_fraction=0.05))
  assert builder.info.splits["train"].num_examples == 23
  assert builder.info.metadata["missing_clips"] == [ids["trainSet"][0]]
  for clip in ids["testSet"][:3]:
    for f in (root / "frames" / clip).iterdir():
      f.unlink()
  with pytest.raises(DataError, match=r"4 of 40 listed clips lack") as e:
    ave.prepare(tmp_path / "b", root, video_clips.ClipOptions(**OPTIONS))
  assert "frames/{VideoID}_{Start}_{End}/NN.jpg" in str(e.value)
  assert not (tmp_path / "b" / "ave").exists() or not any(
      (tmp_path / "b" / "ave").rglob("dataset_info.json"))


def test_layout_errors(tmp_path):
  with pytest.raises(DataError, match="set data.manual_dir"):
    ave.prepare(tmp_path / "d", None)
  root = tmp_path / "clips"
  root.mkdir()
  (root / "Annotations.txt").write_text("")
  with pytest.raises(DataError, match=r"lacks \['trainSet.txt'.*'frames/'"):
    ave.prepare(tmp_path / "d", root)
  fakes.write_ave(root)
  (root / "valSet.txt").write_text("Bark&abc&good&zero&10\n")
  with pytest.raises(DataError, match="valSet.txt' line 1"):
    ave.prepare(tmp_path / "d", root, video_clips.ClipOptions(**OPTIONS))


def test_small_config_end_to_end(fixture_dir, tmp_path):
  from configs import ave as ave_config  # pylint: disable=g-import-not-at-top
  c = fakes.tiny_clip_job(ave_config.get_config("small"), fixture_dir,
                          tmp_path / "tfds")
  workdir = tmp_path / "work"
  experiment.run(c, str(workdir))
  with open(os.path.join(workdir, "results.json")) as f:
    results = json.load(f)
  assert results["dataset"] == "ave"
  assert set(results["methods"]) == fakes.all_methods(("audio", "visual"))
  scenarios = set(results["methods"]["ume"])
  assert {"full", "missing:audio", "missing:visual"} <= scenarios
  for row in results["methods"].values():
    assert set(row) == scenarios


def _params(config, workdir, run_dir, method):
  mesh = mesh_lib.build_mesh(config.mesh)
  return experiment.restore_params(os.path.join(workdir, run_dir), method,
                                methods.abstract_params(method, mesh))


def test_whisper_small_config_end_to_end(fixture_dir, tmp_path):
  """``:whisper,small``: the pre-trained Whisper encoder (two blocks, from
  the installed package) on 2-s Whisper log-mel, the whole method."""
  from configs import ave as ave_config  # pylint: disable=g-import-not-at-top
  c = ave_config.get_config("whisper,small")
  c.data.update(dict(manual_dir=str(fixture_dir),
                     data_dir=str(tmp_path / "tfds"), **OPTIONS))
  c.model.encoders.visual.kwargs = dict(widths=(4,), blocks=(1,),
                                        feature_dim=8)
  c.eval.missing_rates = (1.0,)
  for stage in (c.pretrain, c.scratch, c.finetune):
    stage.num_steps, stage.batch_size = 3, 8
    stage.optim.warmup_steps = 1
  c.eval.batch_size = 16
  c.checkpoint.every_steps = 3
  workdir = str(tmp_path / "work")
  results = experiment.run(c, workdir)
  assert set(results["methods"]) == {
      "unimodal:audio", "unimodal:visual", "ume", "late_fusion",
      "late_fusion_pretrained", "mma", "ume_mma", "best_per_pattern"}
  assert np.isfinite(results["methods"]["mma"]["full"]["accuracy"])
  # The frozen front end and block0 are still the package's weights after
  # uni-modal pre-training and mma fine-tuning.
  spec = registry.get_dataset(c.data).spec
  assert spec.input_shapes["audio"] == (80, 200)
  want = weights.load("whisper_tiny_en")
  uni = _params(c, workdir, "pretrain/audio",
                fakes.unimodal(c, spec, "audio"))["encoder"]
  mma = _params(c, workdir, "mma", fakes.fusion(c, spec, "mma")
                )["audio_encoder"]
  for got in (uni, mma):
    for key in ("conv1", "conv2", "pos_embed", "block0"):
      jax.tree.map(lambda a, b: np.testing.assert_array_equal(
          np.asarray(a), b), got[key], want[key])
