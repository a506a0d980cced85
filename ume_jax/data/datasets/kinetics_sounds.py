"""Kinetics-Sounds (Arandjelovic & Zisserman, 2017) from extracted clips.

Kinetics-Sounds is the 31-class audio-visual subset of Kinetics used by
OGM-GE (github.com/GeWu-Lab/OGM-GE_CVPR2022), whose split lists
``data/KineticSound/my_train.txt`` / ``my_test.txt`` we read. Users download
the listed YouTube clips (e.g. with a Kinetics downloader), run
``scripts/extract_av_clips.py --dataset=kinetics_sounds`` and set
``data.manual_dir`` to its output, which holds::

  my_train.txt, my_test.txt       lines ``<clip_id>,<seconds>,<class index>``
  frames/{clip_id}/00.jpg ...     RGB frames
  audio/{clip_id}.wav             16 kHz mono

``clip_id`` is ``<11-char YouTube id>_<start>`` (OGM-GE's lists) or
``<id>_<start>_<end>``; the loader only uses it as a name. Class indices are
0..30 as in the lists (no class names there).

Validation (Kinetics-Sounds has none in OGM-GE): a deterministic
``data.validation_fraction`` (default 0.1) of the train list - the clips with
the smallest sha1(clip_id) - independent of file order, so it does not change
when the list is reordered. The fraction is part of the prepared dataset's
name (``..._v100``), so another fraction prepares another copy.

Stored form and options (``data.audio_front_end``: a Kaldi-style fbank for
the ResNet, or Whisper's log-mel for the pre-trained Whisper encoder): see
``video_clips.py``.
"""
import hashlib
import pathlib

from ume_jax.data import pipeline
from ume_jax.data.datasets import video_clips
from ume_jax.data.errors import DataError

NAME = "kinetics_sounds"
NUM_CLASSES = 31
LIST_FILES = {"train": "my_train.txt", "test": "my_test.txt"}


def parse_list(path: pathlib.Path) -> list[video_clips.Clip]:
  """-> [Clip]; DataError naming a bad line."""
  def clip(line):
    parts = [p.strip() for p in line.split(",")]
    if len(parts) != 3 or not parts[0]:
      raise ValueError(f"{len(parts)} fields")
    label = int(parts[2])
    if not 0 <= label < NUM_CLASSES:
      raise ValueError(f"class {label} not in 0..{NUM_CLASSES - 1}")
    return video_clips.Clip(parts[0], label)
  return video_clips.parse_list_file(
      NAME, path, "<clip_id>,<seconds>,<class index>", clip)


def carve_validation(train, fraction: float):
  """(train, validation): the `fraction` of clips with smallest sha1(id)."""
  key = lambda c: hashlib.sha1(c.clip_id.encode()).hexdigest()
  n = int(round(len(train) * fraction))
  held = {c.clip_id for c in sorted(train, key=key)[:n]}
  return ([c for c in train if c.clip_id not in held],
          [c for c in train if c.clip_id in held])


class KineticsSounds(video_clips.ClipBuilder):
  """Kinetics-Sounds: 31 Kinetics classes that can be heard and seen."""

  VERSION = video_clips.tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release, from extracted clips."}
  NUM_CLASSES = NUM_CLASSES
  LAYOUT = ("my_train.txt, my_test.txt (OGM-GE's lists, lines"
            " <clip_id>,<seconds>,<class index>), frames/{clip_id}/NN.jpg and"
            " audio/{clip_id}.wav (16 kHz mono).")
  CARVES_VALIDATION = True

  @classmethod
  def list_files(cls):
    return list(LIST_FILES.values())

  @classmethod
  def read_splits(cls, manual_dir, options):
    train = parse_list(manual_dir / LIST_FILES["train"])
    train, validation = carve_validation(train, options.validation_fraction)
    if not validation or not train:
      raise DataError(
          f"data.validation_fraction = {options.validation_fraction} of the"
          f" {len(train) + len(validation)} clips in"
          f" {manual_dir / LIST_FILES['train']} leaves an empty"
          f" {'validation' if not validation else 'train'} split; choose a"
          " fraction that leaves at least one clip in each.")
    return ({"train": train, "validation": validation,
             "test": parse_list(manual_dir / LIST_FILES["test"])},
            [str(i) for i in range(NUM_CLASSES)])


def prepare(data_dir, manual_dir=None, options=video_clips.ClipOptions()):
  return video_clips.prepare(KineticsSounds, data_dir, manual_dir, options)


def load(data_config) -> pipeline.Dataset:
  """Registry factory: prepares (if needed) and returns Kinetics-Sounds."""
  return video_clips.load(KineticsSounds, data_config)
