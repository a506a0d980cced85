"""avmnist: AV-MNIST from the user's own files (MultiBench's on-disk form).

tensorflow-datasets builder (ArrayRecord, no TensorFlow) + loader. Nothing is
downloaded: the user points ``data.manual_dir`` at MultiBench's ``avmnist``
folder, which must hold::

  image/train_data.npy   (N, 784) or (N, 28, 28), uint8 or float
  image/test_data.npy    (M, 784) or (M, 28, 28), uint8 or float
  audio/train_data.npy   (N, 112, 112) spectrograms, float (or uint8)
  audio/test_data.npy    (M, 112, 112)
  train_labels.npy       (N,) integer classes 0..9
  test_labels.npy        (M,)

(N = 60,000, M = 10,000 for the real data set.) On first use it is prepared
into ``data.data_dir`` under ``avmnist/1.0.0/``; later runs read only that.

Conventions, from MultiBench's loader ``datasets/avmnist/get_data.py``
(github.com/pliang279/MultiBench, ``get_dataloader``):

* Splits: train = the first 55,000 rows of the train files, validation = the
  last 5,000 (``trainlist[0:55000]`` / ``trainlist[55000:60000]``), test = the
  10,000 test rows. Here: train = first N - V, validation = last V rows, with
  V = ``data.validation_size`` (default 5,000, MultiBench's), so small files
  (tests, subsets) work too. Records keep the files' order
  (``disable_shuffling``): train record i is row i, validation record j is
  row N - V + j.
* Scaling: MultiBench divides both the image and the audio arrays by 255
  (``normalize_image`` / ``normalize_audio``, on by default) and the image
  division is in place (``trains[0] /= 255.0``), so its image files are
  floats in 0..255 (the audio too, apparently). Images are reshaped from 784
  to 28x28; audio is used at full 112x112 resolution, not downsampled (only
  optionally flattened). Channels are added (NCHW there, NHWC here).
* Labels: ``astype(int)``; here integer files, or float files holding whole
  numbers, with classes 0..9.

Stored form (our choices):

* image: uint8 (28, 28, 1). uint8 files are kept as they are. Float files are
  classified once, from the larger of the train/test maxima: max <= 1.0 means
  "scaled to [0, 1]" and is stored as round(x * 255); max <= 255 means
  MultiBench's 0..255 floats and is stored as round(x). Anything outside
  [0, 255] (or a negative value) is a DataError.
* audio: uint8 (112, 112, 1), quantised linearly with the train split's
  minimum and maximum (over all 60,000 train rows, validation included, as
  MultiBench's statistics would be): q = round((x - lo) / (hi - lo) * 255),
  clipped to 0..255 (test values outside [lo, hi] saturate). uint8 audio files
  are kept as they are. Why uint8 rather than float16: 0.88 GB instead of
  1.76 GB (float32 would be 3.5 GB), the same uint8 -> (x/255 - mean)/std
  path as every other modality in the pipeline (``transforms.Standardize``,
  ``RandomShift``), and a step of (hi - lo)/255 - for MultiBench's 0..255
  spectrograms that is the resolution the values already have. ``lo``/``hi``
  and the quantised train mean/std are kept in the dataset's metadata.

Standardisation (fixed, so inputs do not depend on the user's copy): image
(x/255 - 0.1307) / 0.3081, the usual MNIST constants (AV-MNIST's images are
MNIST digits); audio (x/255 - 0.5) / 0.25: after min/max quantisation the
values span [0, 1], and this maps that range to [-2, 2]. The measured
train mean/std of the quantised audio are in
``builder.info.metadata["audio_quantised_mean_std"]``.
"""

import os
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from ume_jax.data import pipeline
from ume_jax.data import prepare as prepare_lib
from ume_jax.data import transforms
from ume_jax.data.errors import DataError
from ume_jax.data.prepare import SPLITS
from ume_jax.data.spec import DatasetSpec

NAME = "avmnist"
VERSION = "1.0.0"
NUM_CLASSES = 10
VALIDATION_SIZE = 5000  # MultiBench: the last 5,000 train rows
IMAGE_SHAPE = (28, 28)
AUDIO_SHAPE = (112, 112)
# key -> (path relative to manual_dir, per-example shape(s) accepted, text)
FILES = {
    "image_train": ("image/train_data.npy", [(784,), IMAGE_SHAPE],
                    "(N, 784) or (N, 28, 28) uint8, or float in [0, 1] or"
                    " [0, 255]"),
    "image_test": ("image/test_data.npy", [(784,), IMAGE_SHAPE],
                   "(M, 784) or (M, 28, 28) uint8, or float in [0, 1] or"
                   " [0, 255]"),
    "audio_train": ("audio/train_data.npy", [AUDIO_SHAPE],
                    "(N, 112, 112) float (or uint8)"),
    "audio_test": ("audio/test_data.npy", [AUDIO_SHAPE],
                   "(M, 112, 112) float (or uint8)"),
    "label_train": ("train_labels.npy", [()], "(N,) integer classes 0..9"),
    "label_test": ("test_labels.npy", [()], "(M,) integer classes 0..9"),
}
_CHUNK = 2048  # rows per read when scanning/converting (memory-mapped files)


def _expected_listing(manual_dir) -> str:
  return "; ".join(f"{os.path.join(os.fspath(manual_dir), rel)} ({text})"
                   for rel, _, text in FILES.values())


def _file_error(manual_dir, rel, what: str) -> DataError:
  return DataError(
      f"avmnist file {os.path.join(os.fspath(manual_dir), rel)!r}: {what}."
      " data.manual_dir must be MultiBench's avmnist folder, holding: "
      + _expected_listing(manual_dir) + " (N = 60000, M = 10000 for the real"
      " data set).")


def _header(path):
  """(shape, dtype) of an .npy file without reading its data."""
  with open(path, "rb") as f:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
      shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    else:
      shape, _, dtype = np.lib.format.read_array_header_2_0(f)
  return tuple(shape), np.dtype(dtype)


def check_manual_dir(manual_dir, validation_size: int = VALIDATION_SIZE):
  """Checks every file's presence, shape, dtype and length; no data read.

  Returns:
    {key: (path, shape, dtype)} for the keys of FILES.

  Raises:
    DataError: a missing directory or file (listing every expected file and
      where it looked), or a file with the wrong shape/dtype/length (naming
      the file, what was found and what was expected).
  """
  manual_dir = prepare_lib.manual_dir_path(
      NAME, manual_dir, "your own copy of AV-MNIST in MultiBench's form",
      lambda where: "It must be MultiBench's avmnist folder, holding: "
      + _expected_listing(where) + ".")
  missing = [rel for rel, _, _ in FILES.values()
             if not (manual_dir / rel).is_file()]
  if missing:
    raise DataError(
        f"avmnist data.manual_dir {os.fspath(manual_dir)!r} lacks "
        f"{len(missing)} of the {len(FILES)} expected files "
        f"({', '.join(missing)}). Looked for: "
        + _expected_listing(manual_dir) + " (N = 60000, M = 10000 for the"
        " real data set).")
  found = {}
  for key, (rel, shapes, text) in FILES.items():
    path = manual_dir / rel
    try:
      shape, dtype = _header(path)
    except (OSError, ValueError) as e:
      raise _file_error(manual_dir, rel, f"cannot be read as an .npy "
                        f"({type(e).__name__}: {e})") from e
    field = key.split("_")[0]
    if field == "label" and len(shape) == 2 and shape[1] == 1:
      shape_ok = True  # (N, 1) column of labels is accepted too
    else:
      shape_ok = len(shape) >= 1 and tuple(shape[1:]) in [tuple(s) for s in
                                                          shapes]
    kind_ok = (dtype.kind in "iuf" if field == "label"  # floats: integral
               else dtype == np.uint8 or dtype.kind == "f")
    if not (shape_ok and kind_ok):
      raise _file_error(manual_dir, rel, f"found shape {shape} dtype {dtype},"
                        f" expected {text}")
    found[key] = (path, shape, dtype)
  for split in ("train", "test"):
    lengths = {k: found[k][1][0] for k in found if k.endswith(split)}
    if len(set(lengths.values())) != 1:
      raise DataError(
          f"avmnist data.manual_dir {os.fspath(manual_dir)!r}: the {split}"
          " files have different numbers of examples ("
          + ", ".join(f"{FILES[k][0]}: {n}" for k, n in lengths.items())
          + "); each row of the image, audio and label files is one example.")
  n_train = found["image_train"][1][0]
  if not 0 < validation_size < n_train:
    raise DataError(
        f"avmnist: data.validation_size = {validation_size}, but "
        f"{os.fspath(manual_dir / FILES['image_train'][0])!r} has {n_train}"
        " train rows; the last validation_size rows become the validation"
        " split, so it must be in [1, N - 1] (MultiBench: 5000 of 60000).")
  if found["image_test"][1][0] == 0:
    raise _file_error(manual_dir, FILES["image_test"][0], "has no rows")
  return found


def _load(path):
  try:
    return np.load(path, mmap_mode="r", allow_pickle=False)
  except (OSError, ValueError) as e:  # e.g. shorter than its header says
    raise DataError(
        f"avmnist file {os.fspath(path)!r} cannot be read ({type(e).__name__}:"
        f" {e}); it is probably truncated or corrupt: copy it again from"
        " MultiBench's avmnist folder.") from e


def _scan(arr, fn):
  for start in range(0, arr.shape[0], _CHUNK):
    fn(np.asarray(arr[start:start + _CHUNK]))


def _minmax(arr):
  lo, hi = [np.inf], [-np.inf]

  def acc(x):
    lo[0] = min(lo[0], float(np.min(x)))
    hi[0] = max(hi[0], float(np.max(x)))
  _scan(arr, acc)
  return lo[0], hi[0]


def _image_scale(manual_dir, found) -> float:
  """255.0 for [0, 1] floats, 1.0 for 0..255 floats or uint8 files."""
  if all(found[k][2] == np.uint8 for k in ("image_train", "image_test")):
    return 1.0
  ranges = {k: _minmax(_load(found[k][0]))
            for k in ("image_train", "image_test")}
  for k, (lo, hi) in ranges.items():
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0 or hi > 255:
      raise _file_error(manual_dir, FILES[k][0],
                        f"values span [{lo}, {hi}], expected pixel values in"
                        " [0, 1] or [0, 255]")
  return 255.0 if max(hi for _, hi in ranges.values()) <= 1.0 else 1.0


def _labels(manual_dir, found, key):
  y = np.asarray(_load(found[key][0])).reshape(-1)
  if y.dtype.kind == "f" and not np.array_equal(y, np.round(y)):
    raise _file_error(manual_dir, FILES[key][0], "holds non-integral float"
                      " labels, expected classes 0..9")
  if y.size and (y.min() < 0 or y.max() >= NUM_CLASSES):
    raise _file_error(manual_dir, FILES[key][0], f"labels span [{y.min()},"
                      f" {y.max()}], expected classes 0..{NUM_CLASSES - 1}")
  return y.astype(np.int64)


def fingerprint(found) -> dict:
  """What the prepared dataset was made from (cheap: names, shapes, sizes)."""
  return {FILES[k][0]: [list(shape), str(dtype), os.path.getsize(path)]
          for k, (path, shape, dtype) in sorted(found.items())}


class Avmnist(prepare_lib.ArrayRecordBuilder):
  """AV-MNIST: MNIST digits paired with spoken-digit spectrograms."""

  VERSION = tfds.core.Version(VERSION)
  RELEASE_NOTES = {str(VERSION): "Initial release, from MultiBench's files."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Set data.manual_dir to MultiBench's avmnist folder (image/, audio/,"
      " train_labels.npy, test_labels.npy).")

  def __init__(self, *, avmnist_dir=None, validation_size=VALIDATION_SIZE,
               **kwargs):
    self._avmnist_dir = avmnist_dir
    self._validation_size = int(validation_size)
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=__doc__,
        features=tfds.features.FeaturesDict({
            # Tensor, not Image/Audio (those need TensorFlow); BYTES stores
            # the raw uint8 buffer.
            "image": tfds.features.Tensor(shape=IMAGE_SHAPE + (1,),
                                          dtype=np.uint8,
                                          encoding=tfds.features.Encoding.BYTES),
            "audio": tfds.features.Tensor(shape=AUDIO_SHAPE + (1,),
                                          dtype=np.uint8,
                                          encoding=tfds.features.Encoding.BYTES),
            "label": tfds.features.ClassLabel(num_classes=NUM_CLASSES),
        }),
        supervised_keys=None,
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download: the files are the user's.
    d = pathlib.Path(os.path.expanduser(os.fspath(self._avmnist_dir)))
    found = check_manual_dir(d, self._validation_size)
    image_scale = _image_scale(d, found)
    audio_train = _load(found["audio_train"][0])
    if found["audio_train"][2] == np.uint8 and found["audio_test"][2] == np.uint8:
      lo, hi = 0.0, 255.0
    else:
      lo, hi = _minmax(audio_train)
      if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        raise _file_error(d, FILES["audio_train"][0], f"values span [{lo},"
                          f" {hi}], expected finite, non-constant"
                          " spectrograms")
    labels = {s: _labels(d, found, f"label_{s}") for s in ("train", "test")}
    # Quantised train audio mean/std (one more pass; informational).
    sums = np.zeros(2)

    def acc(x):
      q = self._quantise(x, lo, hi).astype(np.float64) / 255
      sums[:] += (q.sum(), np.square(q).sum())
    _scan(audio_train, acc)
    count = audio_train.size
    mean = sums[0] / count
    std = float(np.sqrt(max(sums[1] / count - mean ** 2, 0.0)))
    self.info.metadata.update({
        "manual_dir": os.fspath(d),
        "fingerprint": fingerprint(found),
        "validation_size": self._validation_size,
        "image_scale": image_scale,
        "audio_min_max": [lo, hi],
        "audio_quantised_mean_std": [round(float(mean), 4), round(std, 4)],
    })
    n = found["image_train"][1][0]
    v = self._validation_size
    train = ("image_train", "audio_train", labels["train"])
    test = ("image_test", "audio_test", labels["test"])
    gen = lambda keys, start, stop: self._generate_examples(
        found, keys, start, stop, image_scale, lo, hi)
    return {"train": gen(train, 0, n - v),
            "validation": gen(train, n - v, n),
            "test": gen(test, 0, found["image_test"][1][0])}

  @staticmethod
  def _quantise(x, lo, hi):
    if x.dtype == np.uint8 and (lo, hi) == (0.0, 255.0):
      return x
    q = np.rint((x.astype(np.float64) - lo) * (255.0 / (hi - lo)))
    return np.clip(q, 0, 255).astype(np.uint8)

  def _generate_examples(self, found, keys, start, stop, image_scale, lo, hi):
    image = _load(found[keys[0]][0])
    audio = _load(found[keys[1]][0])
    labels = keys[2]
    for c in range(start, stop, _CHUNK):
      e = min(c + _CHUNK, stop)
      im = np.asarray(image[c:e])
      if im.dtype != np.uint8:
        im = np.clip(np.rint(im.astype(np.float64) * image_scale), 0, 255
                     ).astype(np.uint8)
      im = im.reshape((e - c,) + IMAGE_SHAPE + (1,))
      au = self._quantise(np.asarray(audio[c:e]), lo, hi)[..., None]
      for j in range(e - c):
        yield c + j, {"image": im[j], "audio": au[j],
                      "label": int(labels[c + j])}


def prepare(data_dir, manual_dir=None,
            validation_size: int = VALIDATION_SIZE) -> Avmnist:
  """Returns a builder whose dataset is prepared in `data_dir`, checked.

  Prepares from `manual_dir` if needed (checking every file first). Once
  prepared, `manual_dir` may be absent; if given, its files must match the
  ones the dataset was prepared from (names, shapes, dtypes, sizes), and
  `validation_size` the one it was prepared with, else DataError (stale).
  """
  validation_size = int(validation_size)
  check = lambda d: check_manual_dir(d, validation_size)
  source = prepare_lib.manual_dir_source(
      manual_dir, check, lambda d: fingerprint(check(d)),
      compared="names, shapes, dtypes or sizes",
      options={"validation_size": validation_size})
  return prepare_lib.prepared(Avmnist, data_dir, source,
                              avmnist_dir=manual_dir,
                              validation_size=validation_size)


STATS = {
    "image": (0.1307, 0.3081),
    "audio": (0.5, 0.25),
}
# Augmentation (data.augment=True): image shifted up to 2 px per axis, audio
# up to 4 frames in time (axis 0), zero fill.
MAX_SHIFT = {"image": (2, 2, 0), "audio": (4, 0, 0)}


def load(data_config) -> pipeline.Dataset:
  """Registry factory: prepares (if needed) and returns the avmnist Dataset.

  data_config keys (read with .get): manual_dir (MultiBench's avmnist folder;
  needed to prepare), data_dir, validation_size (5000), augment, worker_count,
  worker_buffer_size, read_threads, cache_in_memory (False: 0.9 GB).
  """
  builder = prepare(data_config.get("data_dir"),
                    data_config.get("manual_dir") or None,
                    data_config.get("validation_size") or VALIDATION_SIZE)
  sources = {s: builder.as_data_source(s) for s in SPLITS}
  spec = DatasetSpec(
      name=NAME,
      modalities=("image", "audio"),
      input_shapes={"image": IMAGE_SHAPE + (1,), "audio": AUDIO_SHAPE + (1,)},
      num_classes=NUM_CLASSES,
      multilabel=False,
      split_sizes={s: len(src) for s, src in sources.items()},
  )
  augment = (transforms.RandomShift(MAX_SHIFT)
             if data_config.get("augment", False) else None)
  return pipeline.Dataset.from_config(
      spec, sources, transforms.Standardize(STATS), augment, data_config,
      # 70k examples, 0.9 GB as uint8: read from disk unless asked.
      cache_by_default=False)
