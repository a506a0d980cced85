"""Log-mel filterbank front end in numpy (used when preparing a dataset).

16 kHz mono wav -> (num_frames, n_mels) log-mel energies in dB, padded with
silence or cropped to a fixed number of frames, then quantised to uint8 over a
fixed dB range so that every dataset's audio goes through the same
``uint8 -> (x/255 - mean)/std`` path as images (``transforms.Standardize``).

Defaults follow the common Kaldi/AST-style fbank: 25 ms Hann window, 10 ms hop,
HTK mel scale, power spectrum. The quantisation range [DB_MIN, DB_MAX] is
fixed (not measured per dataset) so that prepared data do not depend on which
clips a user happens to have; 120 dB over 255 steps is ~0.47 dB per step.

The Whisper front end (``wav_to_uint8_whisper``) stores Whisper's own log-mel
(``log_mel.py``) the same way, over its fixed range [WHISPER_MIN,
WHISPER_MAX]; ``WHISPER_STATS`` makes ``Standardize`` undo that map exactly,
so the Whisper encoder reads the values it was trained on, within half a
quantisation step (0.0069).
"""
import dataclasses
import functools

import numpy as np
from scipy.io import wavfile

from ume_jax.data.frontends import log_mel as whisper_log_mel

DB_MIN, DB_MAX = -70.0, 50.0  # a full-scale 440 Hz sine peaks at ~+42 dB


@dataclasses.dataclass(frozen=True)
class FbankConfig:
  sample_rate: int = 16000
  n_mels: int = 128
  win_ms: float = 25.0
  hop_ms: float = 10.0
  num_frames: int = 1024    # 10.24 s at a 10 ms hop; pad or crop to this
  fmin: float = 20.0
  fmax: float | None = None  # None -> sample_rate / 2

  @property
  def win_length(self) -> int:
    return int(round(self.sample_rate * self.win_ms / 1000))

  @property
  def hop_length(self) -> int:
    return int(round(self.sample_rate * self.hop_ms / 1000))

  @property
  def n_fft(self) -> int:
    return 1 << (self.win_length - 1).bit_length()  # next power of two


def _hz_to_mel(f):
  return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)


def _mel_to_hz(m):
  return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)


@functools.lru_cache(maxsize=8)
def mel_filterbank(cfg: FbankConfig) -> np.ndarray:
  """Triangular HTK-mel filters, (n_fft // 2 + 1, n_mels) float32."""
  fmax = cfg.fmax or cfg.sample_rate / 2
  mels = np.linspace(_hz_to_mel(cfg.fmin), _hz_to_mel(fmax), cfg.n_mels + 2)
  edges = _mel_to_hz(mels)
  freqs = np.linspace(0, cfg.sample_rate / 2, cfg.n_fft // 2 + 1)
  lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
  up = (freqs[None] - lo) / (mid - lo)
  down = (hi - freqs[None]) / (hi - mid)
  return np.maximum(0.0, np.minimum(up, down)).T.astype(np.float32)


def read_wav(path, sample_rate: int = 16000) -> np.ndarray:
  """Reads a wav as float32 mono in [-1, 1]; its rate must be `sample_rate`.

  Resampling is the extraction script's job (ffmpeg -ar 16000), not ours.
  """
  rate, x = wavfile.read(path)
  if rate != sample_rate:
    raise ValueError(f"{path}: sample rate {rate} Hz, expected {sample_rate}"
                     " (extract audio with scripts/extract_av_clips.py)")
  if np.issubdtype(x.dtype, np.integer):
    x = x.astype(np.float32) / float(np.iinfo(x.dtype).max)
  x = x.astype(np.float32)
  return x.mean(axis=1) if x.ndim == 2 else x


def log_mel(wave: np.ndarray, cfg: FbankConfig) -> np.ndarray:
  """(num_samples,) float -> (cfg.num_frames, cfg.n_mels) float32 dB."""
  win, hop = cfg.win_length, cfg.hop_length
  # Enough samples for num_frames frames: the tail is padded with silence.
  need = (cfg.num_frames - 1) * hop + win
  wave = np.asarray(wave, np.float32)[:need]
  wave = np.pad(wave, (0, need - wave.shape[0]))
  idx = np.arange(win)[None] + hop * np.arange(cfg.num_frames)[:, None]
  frames = wave[idx] * np.hanning(win + 2)[1:-1].astype(np.float32)
  power = np.abs(np.fft.rfft(frames, n=cfg.n_fft, axis=-1)) ** 2
  mel = power @ mel_filterbank(cfg)
  return (10.0 * np.log10(np.maximum(mel, 1e-10))).astype(np.float32)


def quantise_db(db: np.ndarray) -> np.ndarray:
  """dB -> uint8 over the fixed range [DB_MIN, DB_MAX] (clipped)."""
  q = np.rint((db - DB_MIN) * (255.0 / (DB_MAX - DB_MIN)))
  return np.clip(q, 0, 255).astype(np.uint8)


def wav_to_uint8_fbank(path, cfg: FbankConfig) -> np.ndarray:
  """A wav file -> (num_frames, n_mels) uint8 quantised log-mel."""
  return quantise_db(log_mel(read_wav(path, cfg.sample_rate), cfg))


# Whisper's normalised log-mel, (log10(power) + 4) / 4: digital silence is
# (log10(1e-10) + 4) / 4 = -1.5; a wave within [-1, 1] has at most
# 400 * sum(hann**2) = 60000 of power in a frame and mel filters of peak
# 0.026, so log10 <= 3.2 and the value <= 1.8 (a full-scale sine reaches
# 1.6). 3.5 over 255 steps is 0.0137 a step.
WHISPER_MIN, WHISPER_MAX = -1.5, 2.0
_WHISPER_STEP = (WHISPER_MAX - WHISPER_MIN) / 255.0
# (mean, std) of x/255 such that Standardize's (x/255 - mean) / std is
# x * step + WHISPER_MIN: the quantisation map undone.
WHISPER_STATS = (-WHISPER_MIN / (WHISPER_MAX - WHISPER_MIN),
                 1.0 / (WHISPER_MAX - WHISPER_MIN))


def quantise_whisper(mel: np.ndarray) -> np.ndarray:
  """Whisper log-mel -> uint8 over [WHISPER_MIN, WHISPER_MAX] (clipped)."""
  q = np.rint((np.asarray(mel, np.float64) - WHISPER_MIN) / _WHISPER_STEP)
  return np.clip(q, 0, 255).astype(np.uint8)


def wav_to_uint8_whisper(path, num_frames: int) -> np.ndarray:
  """A 16 kHz wav file -> (80, num_frames) uint8 Whisper log-mel.

  The clip is padded with silence or trimmed to num_frames * 10 ms first,
  as Whisper pads its 30-s window (num_frames even, at most 3000).
  """
  wave = read_wav(path, whisper_log_mel.SAMPLE_RATE)
  mel = whisper_log_mel.log_mel(wave,
                                num_frames * whisper_log_mel.HOP_LENGTH)
  return quantise_whisper(mel)
