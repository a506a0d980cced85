"""AVE (Audio-Visual Event dataset, Tian et al., ECCV 2018) from extracted clips.

Users get AVE from its authors (github.com/YapengTian/AVE-ECCV18: AVE.zip with
4,143 event segments in 28 categories, ``Annotations.txt`` and the ECCV
split files ``trainSet.txt`` / ``valSet.txt`` / ``testSet.txt``, 3,339 / 402 /
402 segments), then run ``scripts/extract_av_clips.py --dataset=ave`` and set
``data.manual_dir`` to its output, which holds::

  Annotations.txt, trainSet.txt, valSet.txt, testSet.txt   (copied verbatim)
  frames/{VideoID}_{Start}_{End}/00.jpg ...                 RGB frames
  audio/{VideoID}_{Start}_{End}.wav                         16 kHz mono

Every list line is ``Category&VideoID&Quality&StartTime&EndTime`` (a header
line starting with ``Category&`` is skipped). A video can hold several
events, so a clip is one annotated segment, named by video id and seconds.
Labels: index of the category in the sorted list of categories of
``Annotations.txt`` (names in ``builder.info.metadata["classes"]``). The
splits are the authors' (train / validation = valSet / test = testSet).
Stored form and options (``data.audio_front_end``: a Kaldi-style fbank for
the ResNet, or Whisper's log-mel for the pre-trained Whisper encoder): see
``video_clips.py``.
"""
import pathlib

from ume_jax.data import pipeline
from ume_jax.data.datasets import video_clips
from ume_jax.data.errors import DataError

NAME = "ave"
NUM_CLASSES = 28
SPLIT_FILES = {"train": "trainSet.txt", "validation": "valSet.txt",
               "test": "testSet.txt"}


def clip_id(video_id: str, start, end) -> str:
  return f"{video_id}_{int(start)}_{int(end)}"


def parse_list(path: pathlib.Path) -> list[tuple[str, str, int, int]]:
  """-> [(category, video_id, start, end)]; DataError naming a bad line."""
  def row(line):
    parts = line.strip().split("&")
    if len(parts) != 5:
      raise ValueError(f"{len(parts)} fields")
    return (parts[0], parts[1], int(float(parts[3])), int(float(parts[4])))
  return video_clips.parse_list_file(
      NAME, path, "Category&VideoID&Quality&StartTime&EndTime with whole"
      " seconds", row, skip=lambda line: line.startswith("Category&"))


class Ave(video_clips.ClipBuilder):
  """AVE: 28 audio-visual event categories, one label per 10 s segment."""

  VERSION = video_clips.tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release, from extracted clips."}
  NUM_CLASSES = NUM_CLASSES
  LAYOUT = ("Annotations.txt, trainSet.txt, valSet.txt, testSet.txt (lines"
            " Category&VideoID&Quality&StartTime&EndTime),"
            " frames/{VideoID}_{Start}_{End}/NN.jpg and"
            " audio/{VideoID}_{Start}_{End}.wav (16 kHz mono).")

  @classmethod
  def list_files(cls):
    return ["Annotations.txt"] + list(SPLIT_FILES.values())

  @classmethod
  def read_splits(cls, manual_dir, options):
    classes = sorted({r[0] for r in parse_list(manual_dir / "Annotations.txt")})
    if len(classes) > NUM_CLASSES:
      raise DataError(f"ave Annotations.txt in {str(manual_dir)!r} names"
                      f" {len(classes)} categories; AVE has {NUM_CLASSES}.")
    index = {c: i for i, c in enumerate(classes)}
    splits = {}
    for split, rel in SPLIT_FILES.items():
      rows = parse_list(manual_dir / rel)
      unknown = sorted({r[0] for r in rows} - set(index))
      if unknown:
        raise DataError(f"ave {rel} in {str(manual_dir)!r} has categories"
                        f" {unknown} not in Annotations.txt.")
      splits[split] = [video_clips.Clip(clip_id(v, s, e), index[c])
                       for c, v, s, e in rows]
    return splits, classes


def prepare(data_dir, manual_dir=None, options=video_clips.ClipOptions()):
  return video_clips.prepare(Ave, data_dir, manual_dir, options)


def load(data_config) -> pipeline.Dataset:
  """Registry factory: prepares (if needed) and returns the AVE Dataset."""
  return video_clips.load(Ave, data_config)
