"""Whisper's log-mel front end in numpy (what the whisper encoders read).

16 kHz mono float waveform -> padded with silence or trimmed to
``num_samples`` -> STFT (400-point periodic Hann window, hop 160, frames
centred on the samples with reflect padding at both ends) -> power spectrum,
last frame dropped -> 80 mel bands (slaney scale, slaney area normalisation:
librosa's ``filters.mel`` defaults, which Whisper's ``mel_filters.npz``
holds) -> ``log10(max(x, 1e-10))`` -> floored at its maximum minus 8
(an 80 dB range) -> ``(x + 4) / 4``. The result is ``(80, num_samples /
160)``; 30 s gives Whisper's (80, 3000).

This follows openai-whisper's ``log_mel_spectrogram`` and transformers'
``WhisperFeatureExtractor``, except that it computes in float64 (Whisper
runs torch float32) and returns float32: the difference is far below the
fp16 precision of the weights. Mel filters are computed here, not read
from a file. Pure numpy/scipy so that dataset preparation needs no torch.
"""
import functools
import math

import numpy as np
from scipy import signal

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
N_MELS = 80
CHUNK_SAMPLES = 30 * SAMPLE_RATE   # Whisper's 30-s window -> 3000 frames

# Slaney's mel scale: linear below 1 kHz (3 mels per 200 Hz), log above.
_F_SP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOG_STEP = math.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
  hz = np.asarray(hz, np.float64)
  linear = hz / _F_SP
  log = _MIN_LOG_MEL + np.log(np.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / (
      _LOG_STEP)
  return np.where(hz >= _MIN_LOG_HZ, log, linear)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
  mel = np.asarray(mel, np.float64)
  linear = mel * _F_SP
  log = _MIN_LOG_HZ * np.exp(_LOG_STEP * (np.maximum(mel, _MIN_LOG_MEL)
                                          - _MIN_LOG_MEL))
  return np.where(mel >= _MIN_LOG_MEL, log, linear)


@functools.lru_cache(maxsize=4)
def mel_filters(sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT,
                n_mels: int = N_MELS) -> np.ndarray:
  """(n_mels, n_fft // 2 + 1) triangular filters, each of unit area in Hz.

  Band edges are equally spaced in slaney mels from 0 Hz to Nyquist; the
  slaney norm scales filter i by 2 / (width of its band in Hz), so that a
  flat spectrum gives the same energy in every band.
  """
  fft_hz = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
  edges_hz = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2),
                                   n_mels + 2))
  widths = np.diff(edges_hz)
  rise = (fft_hz[None, :] - edges_hz[:-2, None]) / widths[:-1, None]
  fall = (edges_hz[2:, None] - fft_hz[None, :]) / widths[1:, None]
  filters = np.maximum(0.0, np.minimum(rise, fall))
  filters *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]
  filters.flags.writeable = False  # cached: shared by every caller
  return filters


def pad_or_trim(wave: np.ndarray, num_samples: int) -> np.ndarray:
  wave = np.asarray(wave, np.float64)
  if wave.ndim != 1:
    raise ValueError(f"log_mel expects a mono waveform (num_samples,), got"
                     f" shape {wave.shape}; average the channels first.")
  if len(wave) >= num_samples:
    return wave[:num_samples]
  return np.pad(wave, (0, num_samples - len(wave)))


def power_spectrogram(wave: np.ndarray) -> np.ndarray:
  """(n_fft // 2 + 1, len(wave) // hop) power of the centred STFT frames.

  Frame k is centred on sample k * hop; the last frame (centred one hop
  past the end, mostly reflection) is dropped, as Whisper does.
  """
  half = N_FFT // 2
  padded = np.pad(wave, (half, half), mode="reflect")
  frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[
      ::HOP_LENGTH]
  window = signal.get_window("hann", N_FFT, fftbins=True)  # periodic Hann
  spectrum = np.fft.rfft(frames * window, axis=-1)
  return (np.abs(spectrum) ** 2)[:-1].T


def log_mel(wave: np.ndarray, num_samples: int = CHUNK_SAMPLES) -> np.ndarray:
  """(80, num_samples / 160) float32 Whisper log-mel of a 16 kHz waveform.

  ``num_samples`` must be a multiple of 320 so that the encoder's stride-2
  convolution gets an even number of frames; 30 s (the default) is what
  Whisper was trained on, shorter windows (e.g. 2 s = 32000) give shorter
  inputs that the encoder also accepts (its first T / 2 positions).
  """
  if num_samples <= 0 or num_samples % (2 * HOP_LENGTH):
    raise ValueError(f"log_mel num_samples={num_samples} must be a positive"
                     f" multiple of {2 * HOP_LENGTH} (two hops of 10 ms), so"
                     f" that the frame count is even.")
  if num_samples > CHUNK_SAMPLES:
    raise ValueError(f"log_mel num_samples={num_samples} exceeds Whisper's"
                     f" 30-s window ({CHUNK_SAMPLES} samples at 16 kHz).")
  power = power_spectrogram(pad_or_trim(wave, num_samples))
  log_spec = np.log10(np.maximum(mel_filters() @ power, 1e-10))
  log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
  return ((log_spec + 4.0) / 4.0).astype(np.float32)


def resample(wave: np.ndarray, from_rate: int,
             to_rate: int = SAMPLE_RATE) -> np.ndarray:
  """Polyphase resampling (scipy's default Kaiser-windowed FIR filter)."""
  wave = np.asarray(wave, np.float64)
  if from_rate == to_rate:
    return wave
  g = math.gcd(int(from_rate), int(to_rate))
  return signal.resample_poly(wave, to_rate // g, from_rate // g)
