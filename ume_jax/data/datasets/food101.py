"""UPMC Food-101 (Wang et al. 2015): food photos + web-page titles, 101 classes.

tensorflow-datasets builder (ArrayRecord, no TensorFlow) + loader, built on
the image+text machinery in ``image_text.py``. Nothing is downloaded:
``data.manual_dir`` points at the user's copy (the layout of the Kaggle
"upmcfood101" archive and of the missing-aware-prompts repo)::

  images/train/<class>/<class>_<n>.jpg
  images/test/<class>/<class>_<n>.jpg
  texts/train_titles.csv      rows: filename, title, class (no header)
  texts/test_titles.csv

Classes are the sorted folder names of ``images/train`` (101 for the real
data). CSVs are read with the ``csv`` module (titles may hold commas and
quotes). A row whose image file is missing (or whose class is not a folder
of ``images/train``) is skipped and counted; the counts are logged and kept
in ``metadata["skipped_rows"]``. A photo that does not decode and a
malformed row (fewer than 3 fields) are skipped too, and counted per split
against ``data.max_bad_fraction`` (0.01; ``prepare.BadItems``: warned, named
in ``metadata["bad_items"]``); past it preparation stops with a DataError
naming the files.

Splits: test = test_titles.csv; validation = ``data.validation_fraction``
(default 5%) of each class's train rows, at least one, chosen by a fixed
seeded permutation of the rows sorted by filename (``VALIDATION_SEED``);
train = the rest. Records keep the filename order within a split.

Stored: ``image`` uint8 (H, W, 3), resized (bilinear, aspect not kept) to
``data.image_size`` (default 128 x 128; ``upmc_food101/1.0.0/`` at the
default size and validation fraction, ``upmc_food101/s32x32_v050/1.0.0/``
for 32 x 32 and 5%, ... otherwise, side by side); ``text`` the title as UTF-8;
``label`` int32 class index; ``id`` the filename.

Front ends (``image_text.py``): ``data.image_processor`` (default "") a
Hugging Face snapshot folder or its ``preprocessor_config.json`` (CLIP,
ViT): photos are stored as that processor resizes and centre-crops them
(``upmc_food101/s224x224-short224-bicubic_v050/1.0.0/`` for CLIP's), and
normalised at load with its mean / std; ``data.image_size`` then empty or
its output size. Titles are tokenised at load: ``data.tokenizer``
"wordpiece" (default; trained on the train split,
``frontends/text_tokenizer.py``, ``data.vocab_size`` 8000) or "snapshot"
(the ``tokenizer.json`` of ``data.tokenizer_path``; data.vocab_size
unused); ``data.max_len`` 32 ids, 0-padded.
"""

import csv
import functools
import os
import pathlib

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from ume_jax.data import prepare as prepare_lib
from ume_jax.data.datasets import image_text
from ume_jax.data.errors import DataError

NAME = "food101"
VERSION = "1.0.0"
IMAGE_SIZE = (128, 128)
VALIDATION_FRACTION = 0.05
VALIDATION_SEED = 101
STATS = image_text.STATS  # ImageNet statistics


def _layout(where) -> str:
  return (
      f"Looked in {where!r}. Expected UPMC Food-101 as: images/train/<class>/"
      "<file>.jpg, images/test/<class>/<file>.jpg, texts/train_titles.csv and"
      " texts/test_titles.csv (no header; rows: filename, title, class). Get"
      " it from https://visiir.isir.upmc.fr/explore or Kaggle"
      " (gianmarco96/upmcfood101) and set data.manual_dir to the folder"
      " holding images/ and texts/.")


def check_manual_dir(manual_dir, validation_fraction=VALIDATION_FRACTION
                     ) -> dict:
  """Checks the layout (not every image); raises DataError otherwise."""
  d = prepare_lib.manual_dir_path(
      NAME, manual_dir, "your own copy of UPMC Food-101", _layout)
  need = ["images/train", "images/test", "texts/train_titles.csv",
          "texts/test_titles.csv"]
  missing = [p for p in need if not (d / p).exists()]
  if missing:
    raise DataError(f"food101 data.manual_dir {os.fspath(d)!r} lacks"
                    f" {', '.join(missing)}. " + _layout(os.fspath(d)))
  classes = sorted(p.name for p in (d / "images/train").iterdir()
                   if p.is_dir())
  if len(classes) < 2:
    raise DataError(f"food101: {os.fspath(d / 'images/train')!r} has"
                    f" {len(classes)} class folders, expected one per class"
                    " (101). " + _layout(os.fspath(d)))
  if not 0.0 < float(validation_fraction) < 1.0:
    raise DataError(f"food101: data.validation_fraction ="
                    f" {validation_fraction}; expected a fraction in (0, 1)"
                    " of each class's train rows.")
  fp = {"csv_bytes": [(d / p).stat().st_size for p in need[2:]],
        "classes": classes, "validation_fraction": float(validation_fraction)}
  return {"dir": d, "classes": classes, "fingerprint": fp}


def _rows(d: pathlib.Path, split: str, classes, skipped: dict,
          malformed: list):
  """(filename, title, class index) of rows whose image exists; the lines
  with fewer than 3 fields go to ``malformed`` as "texts/<csv>:<line>"."""
  path = d / "texts" / f"{split}_titles.csv"
  index = {c: i for i, c in enumerate(classes)}
  out = []
  try:
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
      reader = csv.reader(f)
      for row in reader:
        if not row:
          continue
        if len(row) < 3:
          skipped["malformed"] += 1
          malformed.append(f"texts/{path.name}:{reader.line_num}")
          continue
        # A title with unquoted commas spreads over several fields.
        name, title, cls = row[0].strip(), ",".join(row[1:-1]), row[-1].strip()
        if cls not in index:
          skipped["unknown_class"] += 1
        elif not (d / "images" / split / cls / name).is_file():
          skipped["missing_image"] += 1
        else:
          out.append((name, title, index[cls]))
  except (OSError, csv.Error) as e:
    raise DataError(f"food101 file {os.fspath(path)!r} cannot be read ({e})."
                    " " + _layout(os.fspath(d))) from e
  return sorted(out)


def _split_validation(rows, num_classes, fraction):
  """Per class: a seeded `fraction` (>= 1 row) of train rows -> validation."""
  rng = np.random.default_rng(VALIDATION_SEED)
  train, val = [], []
  for c in range(num_classes):
    mine = [r for r in rows if r[2] == c]
    k = max(1, int(round(fraction * len(mine)))) if len(mine) > 1 else 0
    chosen = set(rng.permutation(len(mine))[:k].tolist())
    for j, r in enumerate(mine):
      (val if j in chosen else train).append(r)
  return sorted(train), sorted(val)


class UpmcFood101(image_text.ImageTextBuilder):
  """UPMC Food-101 photos and web-page titles (tfds name: upmc_food101)."""

  VERSION = tfds.core.Version(VERSION)
  RELEASE_NOTES = {str(VERSION): "Initial release, from the user's files."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _layout("data.manual_dir")
  NUM_CLASSES = None
  MULTILABEL = False
  DESCRIPTION = __doc__
  FINGERPRINT = "CSV sizes or classes"
  IMAGE_SIZE = IMAGE_SIZE

  def __init__(self, *, validation_fraction=VALIDATION_FRACTION, **kwargs):
    self._validation_fraction = float(validation_fraction)
    super().__init__(**kwargs)

  def _config_name(self) -> str | None:
    # The validation fraction changes the splits, so it is in the name as
    # the clip datasets' (thousandths); None at the defaults.
    if (self._default_shape()
        and self._validation_fraction == VALIDATION_FRACTION):
      return None
    return (f"{self._shape_name()}"
            f"_v{round(self._validation_fraction * 1000):03d}")

  def _split_generators(self, dl_manager):
    del dl_manager
    found = check_manual_dir(self._manual, self._validation_fraction)
    d, classes = found["dir"], found["classes"]
    skipped = {"missing_image": 0, "unknown_class": 0, "malformed": 0}
    malformed = {"train": [], "test": []}
    rows = {s: _rows(d, s, classes, skipped, malformed[s])
            for s in ("train", "test")}
    if not rows["train"] or not rows["test"]:
      raise DataError(f"food101: no usable rows in the train or test CSV of"
                      f" {os.fspath(d)!r} (skipped: {skipped}). "
                      + _layout(os.fspath(d)))
    train, val = _split_validation(rows["train"], len(classes),
                                   self._validation_fraction)
    if sum(skipped.values()):
      logging.warning("food101: skipped CSV rows: %s", skipped)
    self.info.metadata.update({
        "manual_dir": os.fspath(d), "fingerprint": found["fingerprint"],
        **self._shape_metadata(), "classes": classes,
        "validation_fraction": self._validation_fraction,
        "skipped_rows": skipped})
    # A malformed CSV line counts against the split it would have fed (its
    # train rows: train; validation is carved from them).
    self._start_bad_items(d, {
        "train": len(train) + len(malformed["train"]),
        "validation": len(val),
        "test": len(rows["test"]) + len(malformed["test"])})
    for split, lines in malformed.items():
      for line in lines:
        self._bad.skip(split, prepare_lib.BadItem(
            d / line, "a CSV row with fewer than 3 fields (filename, title,"
            " class)"))
    return {"train": self._generate_examples(d, "train", "train", train),
            "validation": self._generate_examples(d, "validation", "train",
                                                  val),
            "test": self._generate_examples(d, "test", "test", rows["test"])}

  def _generate_examples(self, d, split, folder, rows):
    classes = self.info.metadata["classes"]
    for i, (name, title, c) in enumerate(rows):
      try:
        image = self._read_image(d / "images" / folder / classes[c] / name)
      except prepare_lib.BadItem as e:
        self._bad.skip(split, e)
        continue
      yield i, {"image": image, "text": title.encode("utf-8"),
                "label": np.int32(c), "id": name.encode("utf-8")}
    self._bad.done(split)


def prepare(data_dir, manual_dir=None, image_size=IMAGE_SIZE,
            validation_fraction=VALIDATION_FRACTION,
            max_bad_fraction=None, image_processor=None) -> UpmcFood101:
  """Returns a builder whose dataset is prepared in `data_dir`, checked
  (``image_text.prepare``): ``upmc_food101/1.0.0/`` at the default image
  size and validation fraction, ``upmc_food101/s<H>x<W>_v<thousandths>/
  1.0.0/`` otherwise (``<Geometry.name>_v<thousandths>`` with an
  `image_processor`: data.image_processor, a path, an ``ImageProcessor``
  or a ``Geometry``; `image_size` then None or its output size).
  `max_bad_fraction` (data.max_bad_fraction, None:
  ``prepare.DEFAULT_MAX_BAD_FRACTION``): how much of a split may be skipped
  as unreadable."""
  fraction = float(validation_fraction)
  return image_text.prepare(
      UpmcFood101, data_dir, manual_dir, image_size,
      functools.partial(check_manual_dir, validation_fraction=fraction),
      options={"validation_fraction": fraction},
      max_bad_fraction=max_bad_fraction, image_processor=image_processor,
      validation_fraction=fraction)


def load(data_config):
  """Registry factory: prepares (if needed) and returns the food101 Dataset.

  data_config keys (read with .get): manual_dir, data_dir, image_size
  ((128, 128); with image_processor: empty or its output size),
  image_processor ("": bilinear stretch, ImageNet statistics),
  validation_fraction (0.05), max_bad_fraction (0.01), tokenizer
  ("wordpiece" or "snapshot"), tokenizer_path (with "snapshot"),
  vocab_size (8000, "wordpiece" only), max_len (32), augment (random
  shift), worker_count, worker_buffer_size, read_threads, cache_in_memory
  (False).
  """
  front = image_text.front_end(data_config, NAME, IMAGE_SIZE, STATS,
                               default_max_len=32)
  builder = prepare(data_config.get("data_dir"),
                    data_config.get("manual_dir") or None, None,
                    data_config.get("validation_fraction")
                    or VALIDATION_FRACTION,
                    data_config.get("max_bad_fraction",
                                    prepare_lib.DEFAULT_MAX_BAD_FRACTION),
                    image_processor=front.geometry)
  return image_text.load_image_text(builder, NAME, data_config, front)
