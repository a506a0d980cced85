"""MM-IMDB (Arevalo et al. 2017): movie posters + plots, 23 genres, multi-label.

tensorflow-datasets builder (ArrayRecord, no TensorFlow) + loader. Nothing is
downloaded: ``data.manual_dir`` points at the user's copy, in either form:

* raw (``mmimdb.tar.gz`` from the authors / archive.org): ``split.json``
  (``{"train": [ids], "dev": [ids], "test": [ids]}``) and, per id,
  ``{id}.jpeg`` (poster) and ``{id}.json`` (with ``"plot"``: a LIST of plots,
  the first is kept, and ``"genres"``). The per-movie files may sit in
  ``dataset/`` (the archive's layout), in ``images/`` + ``labels/`` (the
  missing-aware-prompts repo's layout) or next to ``split.json``.
  Splits: train = "train", validation = "dev", test = "test".
* hdf5 (MultiBench / gmu-mmimdb ``multimodal_imdb.hdf5``): datasets
  ``images`` (N, 3, 256, 160) uint8, ``genres`` (N, 23) and ``imdb_ids``
  (N,). It holds no plot text (only word2vec ``features``, ``vgg_features``
  and word indices ``sequences`` whose vocabulary is not shipped), so plots
  are read from ``{imdb_id}.json`` files beside it (``dataset/``,
  ``labels/`` or the same folder). Splits by row as in MultiBench: train
  [0, 15552), validation [15552, 18160), test [18160, 25959); for a file
  with N != 25959 rows the same fractions of N are used (rounded).

The raw form is used when ``split.json`` exists, else the hdf5 form.
Genre order (label index) is the frequency order of Arevalo et al. /
MultiBench / MAP (``GENRES``); genres outside it are ignored.

A movie whose poster does not decode or whose json is malformed is skipped
and counted per split (``prepare.BadItems``: warned, named in
``metadata["bad_items"]``), up to ``data.max_bad_fraction`` (0.01) of the
split; past it preparation stops with a DataError naming the files.

Stored: ``image`` uint8 (H, W, 3), the poster resized (bilinear, aspect not
kept) to ``data.image_size`` (default 128 x 80: posters are ~1.6:1 and 256 x
160 in the hdf5; halved to keep CPU cost down), in ``mmimdb/1.0.0/`` at the
default size and ``mmimdb/s<H>x<W>/1.0.0/`` at others, so the ``:small``
config's 32 x 32 posters and the full config's live side by side; ``text``
the first plot as UTF-8 bytes; ``label`` uint8 (23,) multi-hot; ``id``.

Front ends (``image_text.py``): ``data.image_processor`` (default "") a
Hugging Face snapshot folder or its ``preprocessor_config.json`` (CLIP,
ViT): posters are stored as that processor resizes and centre-crops them
(e.g. ``mmimdb/s224x224-short224-bicubic/1.0.0/`` for CLIP's shortest edge
224 + crop 224, beside the default folder) and normalised at load with its
mean / std; ``data.image_size`` then empty or its output size. Text is
tokenised at load: ``data.tokenizer`` "wordpiece" (default; trained on the
train split, ``frontends/text_tokenizer.py``, ``data.vocab_size`` 8000) or
"snapshot" (the ``tokenizer.json`` of ``data.tokenizer_path``, a snapshot
folder or the file; no vocabulary trained, data.vocab_size unused);
``data.max_len`` 128 ids, 0-padded.
"""

import json
import os
import pathlib

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from ume_jax.data import prepare as prepare_lib
from ume_jax.data.datasets import image_text
from ume_jax.data.errors import DataError
from ume_jax.data.prepare import SPLITS

NAME = "mmimdb"
VERSION = "1.0.0"
GENRES = ("Drama", "Comedy", "Romance", "Thriller", "Crime", "Action",
          "Adventure", "Horror", "Documentary", "Mystery", "Sci-Fi", "Fantasy",
          "Family", "Biography", "War", "History", "Music", "Animation",
          "Musical", "Western", "Sport", "Short", "Film-Noir")
HDF5 = "multimodal_imdb.hdf5"
HDF5_BOUNDS = (15552, 18160, 25959)  # MultiBench's train/valid/test rows
MOVIE_DIRS = (("dataset", "dataset"), ("images", "labels"), (".", "."))
SPLIT_KEYS = {"train": "train", "validation": "dev", "test": "test"}
IMAGE_SIZE = (128, 80)


def _layout(where) -> str:
  return (
      f"Looked in {where!r}. Expected EITHER the raw form: split.json"
      ' ({"train": [ids], "dev": [ids], "test": [ids]}) plus, for every id,'
      " {id}.jpeg and {id}.json (keys \"plot\": list of strings, \"genres\":"
      " list of names) in dataset/, in images/ + labels/, or beside"
      f" split.json; OR the MultiBench form: {HDF5} (datasets images"
      " (N, 3, 256, 160) uint8, genres (N, 23), imdb_ids (N,)) plus the"
      " {imdb_id}.json plot files in dataset/, labels/ or beside it (the"
      " hdf5 has no plot text). Get MM-IMDB from"
      " https://archive.org/download/mmimdb (mmimdb.tar.gz) and set"
      " data.manual_dir to the folder holding split.json.")


def _find_movie_dirs(d: pathlib.Path, some_id: str, need_image: bool):
  for img_dir, json_dir in MOVIE_DIRS:
    if (d / json_dir / f"{some_id}.json").is_file() and (
        not need_image or (d / img_dir / f"{some_id}.jpeg").is_file()):
      return d / img_dir, d / json_dir
  return None


def check_manual_dir(manual_dir) -> dict:
  """Finds which form ``manual_dir`` holds; raises DataError otherwise."""
  d = prepare_lib.manual_dir_path(NAME, manual_dir, "your own copy of MM-IMDB",
                                  _layout)
  if (d / "split.json").is_file():
    try:
      split = json.loads((d / "split.json").read_text())
      ids = {s: [str(i) for i in split[k]] for s, k in SPLIT_KEYS.items()}
    except (OSError, ValueError, KeyError, TypeError) as e:
      raise DataError(f"mmimdb file {os.fspath(d / 'split.json')!r} cannot be"
                      f" read as {{'train', 'dev', 'test'}} id lists"
                      f" ({type(e).__name__}: {e}). " + _layout(os.fspath(d))
                      ) from e
    if not all(ids.values()):
      raise DataError(f"mmimdb {os.fspath(d / 'split.json')!r} has an empty"
                      " split. " + _layout(os.fspath(d)))
    dirs = _find_movie_dirs(d, ids["train"][0], need_image=True)
    if dirs is None:
      raise DataError(f"mmimdb: no {ids['train'][0]}.jpeg/.json for the first"
                      " train id of split.json. " + _layout(os.fspath(d)))
    missing = [f"{i}.{ext}" for s in ids.values() for i in s
               for ext, dd in (("jpeg", dirs[0]), ("json", dirs[1]))
               if not (dd / f"{i}.{ext}").is_file()]
    if missing:
      raise DataError(f"mmimdb: {len(missing)} files named in split.json are"
                      f" missing from {os.fspath(dirs[0])!r} /"
                      f" {os.fspath(dirs[1])!r} (first: {missing[:5]}). "
                      + _layout(os.fspath(d)))
    fp = {"form": "raw", "split_json_bytes": (d / "split.json").stat().st_size,
          "counts": {s: len(v) for s, v in ids.items()}}
    return {"form": "raw", "dir": d, "ids": ids, "image_dir": dirs[0],
            "json_dir": dirs[1], "fingerprint": fp}
  if (d / HDF5).is_file():
    return _check_hdf5(d)
  raise DataError("mmimdb data.manual_dir holds neither split.json nor"
                  f" {HDF5}. " + _layout(os.fspath(d)))


def _check_hdf5(d: pathlib.Path) -> dict:
  import h5py  # pylint: disable=g-import-not-at-top
  path = d / HDF5
  try:
    with h5py.File(path, "r") as f:
      shapes = {k: f[k].shape for k in ("images", "genres", "imdb_ids")}
      first_id = _id_str(f["imdb_ids"][0])
  except (OSError, KeyError, ValueError) as e:
    raise DataError(f"mmimdb file {os.fspath(path)!r} cannot be read or lacks"
                    f" a dataset ({type(e).__name__}: {e}). "
                    + _layout(os.fspath(d))) from e
  n = shapes["images"][0]
  if (len(shapes["images"]) != 4 or shapes["images"][1] != 3
      or shapes["genres"] != (n, len(GENRES)) or shapes["imdb_ids"][0] != n
      or n < 3):
    raise DataError(f"mmimdb file {os.fspath(path)!r} has shapes {shapes};"
                    f" expected images (N, 3, H, W), genres (N, {len(GENRES)}),"
                    " imdb_ids (N,), N >= 3. " + _layout(os.fspath(d)))
  dirs = _find_movie_dirs(d, first_id, need_image=False)
  if dirs is None:
    raise DataError(f"mmimdb: {HDF5} has no plot text and no {first_id}.json"
                    f" (its first imdb_id) was found beside it. "
                    + _layout(os.fspath(d)))
  a, b, c = HDF5_BOUNDS
  bounds = (a, b) if n == c else (round(n * a / c), round(n * b / c))
  return {"form": "hdf5", "dir": d, "path": path, "json_dir": dirs[1],
          "bounds": (0,) + bounds + (n,),
          "fingerprint": {"form": "hdf5", "bytes": path.stat().st_size,
                          "shapes": {k: list(v) for k, v in shapes.items()}}}


def _id_str(x) -> str:
  x = x.decode() if isinstance(x, (bytes, np.bytes_)) else x
  return str(x.item() if hasattr(x, "item") else x).strip()


def _read_movie(json_path: pathlib.Path) -> tuple[str, list[str]]:
  """(first plot, genres) of a movie's json; ``prepare.BadItem`` naming it
  if it is not a JSON object (with "plot" a list of strings or a string and
  "genres" a list)."""
  try:
    meta = json.loads(json_path.read_text(encoding="utf-8"))
    if not isinstance(meta, dict):
      raise ValueError(f"a JSON {type(meta).__name__}, not an object")
    plot = meta.get("plot") or [""]
    plot = plot[0] if isinstance(plot, list) else str(plot)
    genres = meta.get("genres") or []
    if not isinstance(genres, list):
      raise ValueError(f"\"genres\" is a {type(genres).__name__}, not a list")
  except (OSError, ValueError) as e:  # UnicodeDecodeError is a ValueError
    raise prepare_lib.BadItem(
        json_path, f"{type(e).__name__}: {e}; each movie's json needs"
        " \"plot\" (a list of strings) and \"genres\"") from e
  return str(plot), [str(g) for g in genres]


def _multi_hot(genres) -> np.ndarray:
  y = np.zeros(len(GENRES), np.uint8)
  for g in genres:
    if g in GENRES:
      y[GENRES.index(g)] = 1
  return y


class Mmimdb(image_text.ImageTextBuilder):
  """MM-IMDB posters and plots, 23 genres (multi-label)."""

  VERSION = tfds.core.Version(VERSION)
  RELEASE_NOTES = {str(VERSION): "Initial release, from the user's files."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _layout("data.manual_dir")
  NUM_CLASSES = len(GENRES)
  MULTILABEL = True
  DESCRIPTION = __doc__
  FINGERPRINT = "form, split.json size or split counts"
  IMAGE_SIZE = IMAGE_SIZE

  def _split_generators(self, dl_manager):
    del dl_manager
    found = check_manual_dir(self._manual)
    self.info.metadata.update({"manual_dir": os.fspath(found["dir"]),
                               "fingerprint": found["fingerprint"],
                               **self._shape_metadata(),
                               "genres": list(GENRES)})
    if found["form"] == "raw":
      totals = {s: len(found["ids"][s]) for s in SPLITS}
    else:
      b = found["bounds"]
      totals = {s: b[i + 1] - b[i] for i, s in enumerate(SPLITS)}
    self._start_bad_items(found["dir"], totals)
    return {s: self._generate_examples(found, s) for s in SPLITS}

  def _generate_examples(self, found, split):
    if found["form"] == "raw":
      return self._raw(found, split, found["ids"][split])
    b = found["bounds"]
    i = SPLITS.index(split)
    return self._hdf5(found, split, b[i], b[i + 1])

  def _raw(self, found, split, ids):
    for i, movie in enumerate(ids):
      try:
        plot, genres = _read_movie(found["json_dir"] / f"{movie}.json")
        image = self._read_image(found["image_dir"] / f"{movie}.jpeg")
      except prepare_lib.BadItem as e:
        self._bad.skip(split, e)
        continue
      yield i, {"image": image, "text": plot.encode("utf-8"),
                "label": _multi_hot(genres), "id": movie.encode()}
    self._bad.done(split)

  def _hdf5(self, found, split, start, stop):
    import h5py  # pylint: disable=g-import-not-at-top
    with h5py.File(found["path"], "r") as f:
      for i in range(start, stop):
        movie = _id_str(f["imdb_ids"][i])
        path = found["json_dir"] / f"{movie}.json"
        try:
          plot = _read_movie(path)[0] if path.is_file() else ""
        except prepare_lib.BadItem as e:
          self._bad.skip(split, e)
          continue
        image = self._resize(Image.fromarray(
            np.ascontiguousarray(np.transpose(f["images"][i], (1, 2, 0)))))
        label = (np.asarray(f["genres"][i]) > 0).astype(np.uint8)
        yield i - start, {"image": image, "text": plot.encode("utf-8"),
                          "label": label, "id": movie.encode()}
    self._bad.done(split)


def prepare(data_dir, manual_dir=None, image_size=IMAGE_SIZE,
            max_bad_fraction=None, image_processor=None) -> Mmimdb:
  """Returns a builder whose dataset is prepared in `data_dir`, checked
  (``image_text.prepare``): ``mmimdb/1.0.0/`` at the default image size,
  ``mmimdb/s<H>x<W>/1.0.0/`` at others, ``mmimdb/<Geometry.name>/1.0.0/``
  with an `image_processor` (data.image_processor: a path, an
  ``ImageProcessor`` or a ``Geometry``; `image_size` then None or its
  output size). `max_bad_fraction` (data.max_bad_fraction, None:
  ``prepare.DEFAULT_MAX_BAD_FRACTION``): how much of a split may be skipped
  as unreadable."""
  return image_text.prepare(Mmimdb, data_dir, manual_dir, image_size,
                            check_manual_dir,
                            max_bad_fraction=max_bad_fraction,
                            image_processor=image_processor)


def load(data_config):
  """Registry factory: prepares (if needed) and returns the mmimdb Dataset.

  data_config keys (read with .get): manual_dir, data_dir, image_size
  ((128, 80); with image_processor: empty or its output size),
  image_processor ("": bilinear stretch, ImageNet statistics),
  max_bad_fraction (0.01), tokenizer ("wordpiece" or "snapshot"),
  tokenizer_path (with "snapshot"), vocab_size (8000, "wordpiece" only),
  max_len (128), augment (random shift), worker_count, worker_buffer_size,
  read_threads, cache_in_memory (False).
  """
  front = image_text.front_end(data_config, NAME, IMAGE_SIZE,
                               image_text.STATS, default_max_len=128)
  builder = prepare(data_config.get("data_dir"),
                    data_config.get("manual_dir") or None, None,
                    data_config.get("max_bad_fraction",
                                    prepare_lib.DEFAULT_MAX_BAD_FRACTION),
                    image_processor=front.geometry)
  return image_text.load_image_text(builder, NAME, data_config, front)
