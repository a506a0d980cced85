"""avdigits: the embedded asset, its tensorflow-datasets builder (ArrayRecord,
no TensorFlow) and the loader.

The asset (``assets/avdigits.npz``, made by ``scripts/make_avdigits.py``)
holds, for each split in ``SPLITS``: ``image_{split}`` uint8 (N, 28, 28),
``audio_{split}`` uint8 (N, 40, 40) (log-mel, time x mel, quantised dB),
``label_{split}`` uint8 (N,) in 0..9 and ``voice_{split}`` int16 (N,); plus
``meta``, a 0-d unicode array holding a JSON object (name, version, seed,
sources, front_end, splits with num_examples, voices, ...).

The dataset is prepared from the asset on first use by ``prepare()``
(``ume_jax.data.prepare``: the asset is validated first, the prepared files
are checked on every load and refused when made from another version of the
asset). Examples keep the asset's order (``disable_shuffling=True``), so
record ``i`` of a split is example ``i`` of the asset.
"""

import json
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

NAME = "avdigits"
VERSION = "1.0.0"
NUM_CLASSES = 10
# field -> (per-example shape, dtype)
FIELDS = {
    "image": ((28, 28), np.dtype(np.uint8)),
    "audio": ((40, 40), np.dtype(np.uint8)),
    "label": ((), np.dtype(np.uint8)),
    "voice": ((), np.dtype(np.int16)),
}
PACKAGED_ASSET = prepare_lib.ASSETS_DIR / "avdigits.npz"


def _fail(path, what: str) -> DataError:
  return DataError(
      f"avdigits asset {os.fspath(path)!r}: {what}. Expected an .npz with, for"
      f" each split in {list(SPLITS)}, keys image_<split> uint8 (N,28,28),"
      " audio_<split> uint8 (N,40,40), label_<split> uint8 (N,) in 0..9,"
      " voice_<split> int16 (N,), and a 0-d unicode JSON 'meta'; regenerate"
      " or restore the file (or point data.asset_path at a good copy)."
  )


def load_asset(path, expected_version: str | None = None):
  """Reads and validates the asset.

  Args:
    path: the .npz file.
    expected_version: if given, `meta["version"]` must equal it.

  Returns:
    (arrays, meta): arrays[split][field] is a numpy array, meta the parsed JSON.

  Raises:
    DataError: naming the file, the key and what was expected.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise _fail(path, "the file does not exist")
  try:
    npz = np.load(path, allow_pickle=False)
  except prepare_lib.NPZ_READ_ERRORS as e:
    raise _fail(path, f"cannot be opened as an .npz ({type(e).__name__}: {e});"
                " it is probably truncated or corrupt") from e
  with npz:
    keys = set(npz.files)

    def read(key):
      if key not in keys:
        raise _fail(path, f"key {key!r} is missing (keys present: "
                    f"{sorted(keys)})")
      try:
        return npz[key]
      except prepare_lib.NPZ_READ_ERRORS as e:
        raise _fail(path, f"key {key!r} cannot be read ({type(e).__name__}: "
                    f"{e}); the file is probably truncated or corrupt") from e

    meta_arr = read("meta")
    arrays = {}
    for split in SPLITS:
      arrays[split] = {}
      n = None
      for field, (shape, dtype) in FIELDS.items():
        key = f"{field}_{split}"
        a = read(key)
        want = ("N",) + shape
        if a.dtype != dtype or a.ndim != len(want) or a.shape[1:] != shape:
          raise _fail(path, f"key {key!r} has dtype {a.dtype} and shape "
                      f"{a.shape}, expected dtype {dtype} and shape {want}")
        if n is None:
          n = a.shape[0]
        if a.shape[0] != n or n == 0:
          raise _fail(path, f"key {key!r} has {a.shape[0]} examples but "
                      f"image_{split} has {n} (expected the same, non-zero, "
                      "count for every key of a split)")
        arrays[split][field] = a
      if arrays[split]["label"].max() >= NUM_CLASSES:
        raise _fail(path, f"key 'label_{split}' has value "
                    f"{int(arrays[split]['label'].max())}, expected labels in "
                    f"0..{NUM_CLASSES - 1}")

  if meta_arr.ndim != 0 or meta_arr.dtype.kind != "U":
    raise _fail(path, f"key 'meta' has dtype {meta_arr.dtype} and shape "
                f"{meta_arr.shape}, expected a 0-d unicode array holding JSON")
  try:
    meta = json.loads(str(meta_arr))
  except ValueError as e:
    raise _fail(path, f"key 'meta' is not valid JSON ({e})") from e
  if not isinstance(meta, dict):
    raise _fail(path, "key 'meta' holds JSON that is not an object")
  if expected_version is not None and meta.get("version") != expected_version:
    raise _fail(path, f"key 'meta' has version {meta.get('version')!r}, "
                f"expected {expected_version!r}")
  for split, info in (meta.get("splits") or {}).items():
    want = info.get("num_examples") if isinstance(info, dict) else None
    if split in arrays and want is not None:
      got = arrays[split]["label"].shape[0]
      if int(want) != got:
        raise _fail(path, f"key 'meta' says split {split!r} has {want} "
                    f"examples but label_{split} has {got}")
  return arrays, meta


class Avdigits(prepare_lib.AssetBuilder):
  """Paired handwritten-digit images and spoken-digit log-mel spectrograms."""

  VERSION = tfds.core.Version(VERSION)
  RELEASE_NOTES = {str(VERSION): "Initial release, from assets/avdigits.npz."}
  PACKAGED_ASSET = PACKAGED_ASSET

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=__doc__,
        features=tfds.features.FeaturesDict({
            # Tensor, not Image/Audio: those need TensorFlow. BYTES encoding
            # stores the raw uint8 buffer (the default stores an int64 per
            # pixel: larger and slower to decode).
            "image": tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8,
                                          encoding=tfds.features.Encoding.BYTES),
            "audio": tfds.features.Tensor(shape=(40, 40, 1), dtype=np.uint8,
                                          encoding=tfds.features.Encoding.BYTES),
            "label": tfds.features.ClassLabel(num_classes=NUM_CLASSES),
            "voice": tfds.features.Tensor(shape=(), dtype=np.int32),
        }),
        supervised_keys=None,
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download: the asset ships with the package.
    arrays, meta = load_asset(self._asset_path, VERSION)
    self._record_asset(meta)
    return {s: self._generate_examples(arrays[s]) for s in SPLITS}

  def _generate_examples(self, a):
    for i in range(a["label"].shape[0]):
      yield i, {
          "image": a["image"][i][..., None],
          "audio": a["audio"][i][..., None],
          "label": int(a["label"][i]),
          "voice": int(a["voice"][i]),
      }


def prepare(data_dir, asset_path=None) -> Avdigits:
  """Returns a builder whose dataset is prepared in `data_dir`, checked
  (``prepare.prepared``: DataError for a bad asset or data directory)."""
  asset_path = pathlib.Path(asset_path or PACKAGED_ASSET)
  return prepare_lib.prepared(
      Avdigits, data_dir,
      prepare_lib.packaged_source(
          asset_path, lambda path: load_asset(path, VERSION)),
      asset_path=asset_path)


# Normalisation: inputs are (x / 255 - MEAN) / STD. Image constants are the
# usual MNIST ones; audio constants are the train split's mean/std of the
# quantised log-mel, rounded. Both are fixed so the model's inputs do not
# change when the asset is regenerated. `modality_means()` gives exact means.
STATS = {
    "image": (0.1307, 0.3081),
    "audio": (0.395, 0.329),
}
# Augmentation (data.augment=True): image shifted up to 2 px in each axis,
# audio shifted up to 2 frames in time (axis 0), zero fill.
MAX_SHIFT = {"image": (2, 2, 0), "audio": (2, 0, 0)}


def load(data_config) -> pipeline.Dataset:
  """Registry factory: prepares (if needed) and returns the avdigits Dataset."""
  builder = prepare(data_config.get("data_dir"), data_config.get("asset_path"))
  sources = {s: builder.as_data_source(s) for s in SPLITS}
  spec = DatasetSpec(
      name=NAME,
      modalities=("image", "audio"),
      input_shapes={"image": (28, 28, 1), "audio": (40, 40, 1)},
      num_classes=NUM_CLASSES,
      multilabel=False,
      split_sizes={s: len(src) for s, src in sources.items()},
  )
  augment = (transforms.RandomShift(MAX_SHIFT)
             if data_config.get("augment", False) else None)
  return pipeline.Dataset.from_config(
      spec, sources, transforms.Standardize(STATS), augment, data_config,
      # 10k small examples (24 MB as uint8): keep them in memory.
      cache_by_default=True)
