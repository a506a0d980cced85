"""Shared reader for audio-visual clip datasets in the extracted on-disk form.

``scripts/extract_av_clips.py`` turns videos into, per clip id::

  frames/{clip_id}/00.jpg, 01.jpg, ...   RGB frames (any size, >= 1 of them)
  audio/{clip_id}.wav                    16 kHz mono

A dataset module (``ave.py``, ``kinetics_sounds.py``) subclasses
``ClipBuilder`` with how to read its split lists (``read_splits``). This module
prepares them as tfds ArrayRecord (no TensorFlow) holding:

* ``visual``: uint8 (num_frames, image_size, image_size, 3): ``num_frames``
  frames picked uniformly over the extracted ones (segment centres, as OGM-GE
  picks 3 per clip), each resized so its short side is ``image_size`` and
  centre-cropped (aspect kept).
* ``audio``, by ``audio_front_end``:

  - ``"fbank"`` (default): uint8 (audio_frames, n_mels, 1) Kaldi-style
    log-mel, quantised over a fixed dB range
    (``frontends/audio_features.py``), an image for 2D CNNs; loaded
    standardised like the frames.
  - ``"whisper"``: uint8 (80, T) Whisper log-mel (``frontends/log_mel.py``)
    of the first ``audio_seconds`` of the clip (silence-padded), T = 100 x
    seconds, quantised over Whisper's fixed output range; loaded as float32
    Whisper values (the quantisation undone, no dataset statistics), which
    is what the pre-trained ``whisper_tiny_en`` encoder was trained on.

These options are a tfds BuilderConfig whose name encodes them (the front end
included), so preparing with other options writes a separate dataset beside
the first one.

Records keep the split list's order minus skipped clips (their ids are in
``builder.info.metadata["missing_clips"]``), so record i maps back to a clip.
Clips whose frames or wav are missing are skipped and counted (logged, and
kept in the dataset's metadata); more than ``max_missing_fraction`` of them
missing is a DataError (it usually means a wrong path or a failed extraction).
Clips whose files are there but do not decode (a corrupt JPEG or wav) are
skipped and counted per split separately, against ``max_bad_fraction``
(``data.max_bad_fraction``, 0.01: a damaged copy, not an expected loss;
``prepare.BadItems``), and named in ``metadata["bad_items"]``.
"""
import abc
import dataclasses
import hashlib
import logging
import os
import pathlib
from typing import Any, Callable

import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from ume_jax.data import pipeline
from ume_jax.data import prepare as prepare_lib
from ume_jax.data import transforms
from ume_jax.data.errors import DataError
from ume_jax.data.frontends import audio_features
from ume_jax.data.frontends import log_mel
from ume_jax.data.prepare import SPLITS
from ume_jax.data.spec import DatasetSpec

MODALITIES = ("audio", "visual")
AUDIO_FRONT_ENDS = ("fbank", "whisper")
# Fixed standardisation: visual ~ ImageNet's mean/std averaged over RGB;
# audio maps the quantised dB range [0, 1] to [-2, 2] (as avmnist's audio).
# The whisper front end's audio uses audio_features.WHISPER_STATS instead.
STATS = {"audio": (0.5, 0.25), "visual": (0.449, 0.226)}


@dataclasses.dataclass(frozen=True)
class Clip:
  clip_id: str
  label: int


@dataclasses.dataclass(frozen=True)
class ClipOptions:
  num_frames: int = 3
  image_size: int = 112
  n_mels: int = 128
  audio_frames: int = 1024
  max_missing_fraction: float = 0.05
  # Clips whose files are there but do not decode: prepare.BadItems.
  max_bad_fraction: float = prepare_lib.DEFAULT_MAX_BAD_FRACTION
  validation_fraction: float = 0.1  # only for datasets without a val list
  audio_front_end: str = "fbank"    # or "whisper"
  audio_seconds: float = 10.0       # whisper only (fbank: audio_frames)

  def __post_init__(self):
    object.__setattr__(self, "max_bad_fraction",
                       prepare_lib.max_bad_fraction(self.max_bad_fraction))
    if self.audio_front_end not in AUDIO_FRONT_ENDS:
      raise DataError(f"data.audio_front_end = {self.audio_front_end!r};"
                      f" expected one of {list(AUDIO_FRONT_ENDS)}.")
    if self.whisper:
      frames = self.audio_seconds * 100
      if (abs(frames - round(frames)) > 1e-6 or round(frames) % 2
          or not 2 <= round(frames) <= 3000):
        raise DataError(
            f"data.audio_seconds = {self.audio_seconds} with the whisper"
            " front end gives a log-mel of 100 x seconds frames, which must"
            " be an even whole number from 2 to 3000 (Whisper's 30 s), e.g."
            " 10 -> 1000 frames.")

  @classmethod
  def from_config(cls, data_config) -> "ClipOptions":
    kw = {f.name: data_config.get(f.name) for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in kw.items() if v is not None})

  @property
  def whisper(self) -> bool:
    return self.audio_front_end == "whisper"

  @property
  def whisper_frames(self) -> int:
    return round(self.audio_seconds * 100)

  @property
  def config_name(self) -> str:
    # The fbank name is what it was before there was a choice, so datasets
    # prepared then are still found.
    audio = (f"whisper{self.whisper_frames}" if self.whisper
             else f"m{self.n_mels}_a{self.audio_frames}")
    return f"f{self.num_frames}_s{self.image_size}_{audio}"

  @property
  def fbank(self) -> audio_features.FbankConfig:
    return audio_features.FbankConfig(n_mels=self.n_mels,
                                      num_frames=self.audio_frames)

  def shapes(self):
    audio = ((log_mel.N_MELS, self.whisper_frames) if self.whisper
             else (self.audio_frames, self.n_mels, 1))
    return {"audio": audio,
            "visual": (self.num_frames, self.image_size, self.image_size, 3)}

  def stats(self):
    """(mean, std) per modality for Standardize (uint8 -> float32)."""
    if self.whisper:
      return STATS | {"audio": audio_features.WHISPER_STATS}
    return STATS

  def stored_audio(self, wav: pathlib.Path) -> np.ndarray:
    """A clip's wav -> its stored uint8 audio of shape shapes()["audio"]."""
    if self.whisper:
      return audio_features.wav_to_uint8_whisper(wav, self.whisper_frames)
    return audio_features.wav_to_uint8_fbank(wav, self.fbank)[..., None]

  def audio_shift(self) -> tuple[int, ...]:
    """Augmentation: fbank audio moves up to 4% of its frames in time
    (zero fill). Whisper audio stays put: the zero fill would be -1.5,
    which Whisper only sees for digital silence, far below a clip's own
    floor (its maximum minus 8 in log10)."""
    if self.whisper:
      return (0, 0)
    return (max(1, self.audio_frames // 25), 0, 0)


def parse_list_file(name: str, path: pathlib.Path, expected: str,
                    parse_line: Callable[[str], Any],
                    skip: Callable[[str], bool] = lambda line: False) -> list:
  """``parse_line(line)`` of each non-blank line of a split/annotation list
  not to ``skip``; a ValueError becomes a DataError naming the file, the
  line and what was ``expected``."""
  rows = []
  for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
    if not line.strip() or skip(line):
      continue
    try:
      rows.append(parse_line(line))
    except ValueError as e:
      raise DataError(f"{name} list {str(path)!r} line {n} {line!r}: expected"
                      f" {expected} ({e}).") from None
  return rows


def frame_files(frames_dir: pathlib.Path, clip_id: str) -> list[pathlib.Path]:
  d = frames_dir / clip_id
  return sorted(d.glob("*.jpg")) if d.is_dir() else []


def pick_frames(n_available: int, n: int) -> list[int]:
  """Centres of n equal segments of the extracted frames (repeats if fewer)."""
  return [min(n_available - 1, int((i + 0.5) * n_available / n))
          for i in range(n)]


def load_frame(path, size: int) -> np.ndarray:
  """JPEG -> uint8 (size, size, 3): short side to `size`, centre crop."""
  with Image.open(path) as im:
    im = im.convert("RGB")
    w, h = im.size
    s = size / min(w, h)
    nw, nh = max(size, round(w * s)), max(size, round(h * s))
    im = im.resize((nw, nh), Image.BILINEAR)
    left, top = (nw - size) // 2, (nh - size) // 2
    return np.asarray(im.crop((left, top, left + size, top + size)), np.uint8)


class ClipBuilder(prepare_lib.ArrayRecordBuilder, skip_registration=True):
  """Base builder: subclasses set NAME-ish class attributes and read_splits."""

  NUM_CLASSES: int = 0
  LAYOUT: str = ""  # the expected manual_dir layout, for error messages
  CARVES_VALIDATION = False  # True: validation_fraction changes the splits

  def __init__(self, *, manual_dir=None, options=ClipOptions(), **kwargs):
    self._clip_dir = manual_dir
    self._options = options
    name = options.config_name
    if self.CARVES_VALIDATION:
      name += f"_v{round(options.validation_fraction * 1000):03d}"
    kwargs["config"] = tfds.core.BuilderConfig(name=name)
    super().__init__(**kwargs)

  @classmethod
  @abc.abstractmethod
  def read_splits(cls, manual_dir: pathlib.Path, options: ClipOptions
                  ) -> tuple[dict[str, list[Clip]], list[str]]:
    """-> ({split: clips}, class names); DataError if list files are bad."""

  @classmethod
  def list_files(cls) -> list[str]:
    """Split/annotation files (relative to manual_dir) that must exist."""
    return []

  def _info(self) -> tfds.core.DatasetInfo:
    shapes = self._options.shapes()
    return self.dataset_info_from_configs(
        description=self.__doc__,
        features=tfds.features.FeaturesDict({
            # Tensor with BYTES encoding: raw uint8 buffers, no TensorFlow.
            m: tfds.features.Tensor(shape=shapes[m], dtype=np.uint8,
                                    encoding=tfds.features.Encoding.BYTES)
            for m in MODALITIES} | {
                "label": tfds.features.ClassLabel(num_classes=self.NUM_CLASSES)}),
        supervised_keys=None,
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download: the files are the user's.
    d = check_manual_dir(type(self), self._clip_dir)
    splits, classes = self.read_splits(d, self._options)
    kept, missing = {}, []
    for split, clips in splits.items():
      kept[split] = []
      for c in clips:
        ok = (frame_files(d / "frames", c.clip_id)
              and (d / "audio" / f"{c.clip_id}.wav").is_file())
        (kept[split] if ok else missing).append(c if ok else c.clip_id)
    total = sum(len(c) for c in splits.values())
    if missing:
      logging.warning("%s: %d of %d clips lack frames or audio; skipped"
                      " (first: %s).", self.name, len(missing), total,
                      missing[:5])
    if len(missing) > self._options.max_missing_fraction * total:
      raise _missing_error(type(self), d, missing, total,
                           self._options.max_missing_fraction)
    self.info.metadata.update({
        "manual_dir": os.fspath(d), "classes": classes,
        "lists_sha256": _lists_sha256(type(self), d),
        "missing_clips": missing, "options": dataclasses.asdict(self._options),
    })
    self._bad = prepare_lib.BadItems(self.name, d,
                                     self._options.max_bad_fraction,
                                     self.info.metadata)
    for s in SPLITS:
      self._bad.expect(s, len(kept[s]))
    return {s: self._generate_examples(d, s, kept[s]) for s in SPLITS}

  def _generate_examples(self, d: pathlib.Path, split: str,
                         clips: list[Clip]):
    o = self._options
    for i, c in enumerate(clips):
      files = frame_files(d / "frames", c.clip_id)
      wav = d / "audio" / f"{c.clip_id}.wav"
      try:
        visual = np.stack([_decode(load_frame, files[j], o.image_size)
                           for j in pick_frames(len(files), o.num_frames)])
        audio = _decode(o.stored_audio, wav)
      except prepare_lib.BadItem as e:
        self._bad.skip(split, e)
        continue
      yield i, {"visual": visual, "audio": audio, "label": c.label}
    self._bad.done(split)


def _decode(read: Callable[..., np.ndarray], path: pathlib.Path, *args):
  """``read(path, *args)``; a file that does not decode (a corrupt JPEG or
  wav) is a ``prepare.BadItem`` naming it."""
  try:
    return read(path, *args)
  except (OSError, ValueError, SyntaxError,
          Image.DecompressionBombError) as e:
    raise prepare_lib.BadItem(
        path, f"{type(e).__name__}: {e}; extract the clip again, or delete"
        " its frames/ and audio/ files (missing clips are skipped up to"
        " data.max_missing_fraction)") from e


def _lists_sha256(cls, d: pathlib.Path) -> str:
  h = hashlib.sha256()
  for rel in cls.list_files():
    h.update((d / rel).read_bytes())
  return h.hexdigest()


def layout_error(cls, manual_dir, what: str) -> DataError:
  return DataError(
      f"{cls.name} data.manual_dir {os.fspath(manual_dir)!r}: {what}. It must"
      f" hold the extracted clips (scripts/extract_av_clips.py): {cls.LAYOUT}")


def _missing_error(cls, d, missing, total, limit) -> DataError:
  return layout_error(
      cls, d, f"{len(missing)} of {total} listed clips lack"
      f" frames/<clip_id>/*.jpg or audio/<clip_id>.wav (more than"
      f" {limit:.0%}; first: {missing[:5]}); looked in {os.fspath(d / 'frames')}"
      f" and {os.fspath(d / 'audio')}")


def check_manual_dir(cls, manual_dir) -> pathlib.Path:
  """The manual_dir as a Path, with every list file and folder present."""
  d = prepare_lib.manual_dir_path(
      cls.name, manual_dir, "your extracted clips", lambda where: (
          "It must hold the extracted clips (scripts/extract_av_clips.py):"
          f" {cls.LAYOUT}"))
  lacking = [r for r in cls.list_files() if not (d / r).is_file()]
  lacking += [r + "/" for r in ("frames", "audio") if not (d / r).is_dir()]
  if lacking:
    raise layout_error(cls, d, f"lacks {lacking}")
  return d


def prepare(cls, data_dir, manual_dir=None, options=ClipOptions()):
  """A builder of `cls` prepared in `data_dir` (from `manual_dir` if needed).

  Once prepared, `manual_dir` may be absent; if given, its split/annotation
  files must be the ones the dataset was prepared from, else DataError.
  """
  source = prepare_lib.manual_dir_source(
      manual_dir, lambda d: check_manual_dir(cls, d),
      lambda d: _lists_sha256(cls, check_manual_dir(cls, d)),
      key="lists_sha256", files="split/annotation files", compared="sha256")
  return prepare_lib.prepared(cls, data_dir, source, manual_dir=manual_dir,
                              options=options)


def load(cls, data_config) -> pipeline.Dataset:
  """Registry factory body shared by the clip datasets."""
  options = ClipOptions.from_config(data_config)
  builder = prepare(cls, data_config.get("data_dir"),
                    data_config.get("manual_dir"), options)
  sources = {s: builder.as_data_source(s) for s in SPLITS}
  spec = DatasetSpec(
      name=cls.name, modalities=MODALITIES, input_shapes=options.shapes(),
      num_classes=cls.NUM_CLASSES, multilabel=False,
      split_sizes={s: len(src) for s, src in sources.items()})
  # Augmentation: frames shifted up to 1/8 of their size, audio in time
  # (ClipOptions.audio_shift).
  shift = max(1, options.image_size // 8)
  augment = (transforms.RandomShift({
      "visual": (0, shift, shift, 0), "audio": options.audio_shift()})
             if data_config.get("augment", False) else None)
  return pipeline.Dataset.from_config(
      spec, sources, transforms.Standardize(options.stats()), augment,
      data_config,
      # ~165 KB a clip at the defaults: AVE (4k clips) fits in memory easily,
      # Kinetics-Sounds (~20k) is ~3.3 GB, so the default is off.
      cache_by_default=False)
