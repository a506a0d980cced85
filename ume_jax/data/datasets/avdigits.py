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

The harder regime: ``data.image_pca_components`` = k > 0. On the asset as
shipped the image model alone is near-perfect (~97.5% test accuracy, audio
~77%), so the image decides almost every pair and a fusion model has little
to add; the objection the paper's reviewers raised, that fusion is often no
better than the best uni-modal model, can only be examined where no single
modality dominates. As AV-MNIST degrades MNIST, the images are then reduced
to their leading k principal components, at PREPARATION time: PCA is fitted
on the train split's images only (float64, 784 pixels, centred by the train
mean, numpy SVD), every split's images are projected onto the leading k
components and reconstructed, rounded (half to even) and clipped to uint8
0..255, and stored as the images (``pca_images``). Audio, labels and voices
are untouched. The same asset (with the same numpy and BLAS) gives
byte-identical images and metadata. ``configs/default.py:hard`` sets k = 4,
chosen on the validation split: the image model's validation accuracy
falls from ~97% to ~67% (29% of the train images' variance kept), audio's
stays ~86%.

A PCA dataset is prepared into its own folder, ``avdigits/pca<k>/<version>/``
(a tfds BuilderConfig named ``pca<k>``), beside the default
``avdigits/<version>/``, which k = 0 (or the key absent) leaves exactly as
before; its metadata records ``image_pca_components`` (k) and
``image_pca_variance_kept`` (the fraction of the train images' variance the
k components hold). A value that is not a whole number in 0..783 is a
DataError before anything is prepared; a k larger than the number of
directions in which the train images vary at all is one while preparing
(nothing is kept). Normalisation (``STATS``) stays the MNIST constants, so
the model's inputs are on the same scale with or without PCA.
"""

import dataclasses
import json
import numbers
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
# The harder regime: images kept to their leading principal components.
PCA_KEY = "data.image_pca_components"
IMAGE_PIXELS = 28 * 28


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


def pca_components(value) -> int:
  """data.image_pca_components (None: absent) as an int in 0..783, else
  DataError. Checked before anything is prepared."""
  if value is None:
    return 0
  ok = (not isinstance(value, bool) and isinstance(value, numbers.Real)
        and float(value).is_integer() and 0 <= value < IMAGE_PIXELS)
  if not ok:
    raise DataError(
        f"avdigits: {PCA_KEY} = {value!r}; expected a whole number in 0.."
        f"{IMAGE_PIXELS - 1}: how many leading principal components of the"
        f" {IMAGE_PIXELS}-pixel train images each image is reduced to when"
        " the dataset is prepared (0, the default, keeps the images as they"
        " are; configs/default.py:hard sets it). Nothing was prepared.")
  return int(value)


def pca_images(arrays: dict, k: int) -> tuple[dict, float]:
  """Every split's images reduced to the train images' leading k principal
  components.

  PCA is fitted on ``arrays["train"]["image"]`` only (float64, centred by
  the train mean, ``np.linalg.svd``); each image x becomes
  ``mean + (x - mean) V_k V_k^T``, rounded half to even and clipped to
  uint8 0..255.

  Args:
    arrays: ``load_asset``'s arrays[split][field].
    k: components kept, 1..783.

  Returns:
    (arrays with the images replaced, the other fields the same objects;
    the fraction of the train images' variance the k components hold).

  Raises:
    DataError: the train images vary in fewer than k directions (the
      further components would be arbitrary).
  """
  train = arrays["train"]["image"]
  x = train.reshape(train.shape[0], -1).astype(np.float64)
  mean = x.mean(axis=0)
  _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
  # numpy's matrix_rank tolerance: directions below it hold no variance.
  rank = int(np.sum(s > s.max(initial=0.0) * max(x.shape) *
                    np.finfo(np.float64).eps))
  if k > rank:
    raise DataError(
        f"avdigits: {PCA_KEY} = {k} but the {x.shape[0]} train images vary"
        f" in only {rank} directions, so components past {rank} would be"
        f" arbitrary; expected at most {rank}. Nothing was kept.")
  basis = vt[:k]
  var = s ** 2
  kept = float(var[:k].sum() / var.sum())
  out = {}
  for split, a in arrays.items():
    images = a["image"]
    flat = images.reshape(images.shape[0], -1).astype(np.float64) - mean
    recon = mean + (flat @ basis.T) @ basis
    out[split] = dict(a, image=np.clip(np.rint(recon), 0, 255).astype(
        np.uint8).reshape(images.shape))
  return out, kept


class Avdigits(prepare_lib.AssetBuilder):
  """Paired handwritten-digit images and spoken-digit log-mel spectrograms.

  ``image_pca_components`` k > 0: the images reduced to their leading k
  principal components (``pca_images``), a BuilderConfig ``pca<k>`` of its
  own folder; 0: the default, unnamed config (``avdigits/<version>/``).
  """

  VERSION = tfds.core.Version(VERSION)
  RELEASE_NOTES = {str(VERSION): "Initial release, from assets/avdigits.npz."}
  PACKAGED_ASSET = PACKAGED_ASSET

  def __init__(self, *, image_pca_components=0, **kwargs):
    self._pca = pca_components(image_pca_components)
    if self._pca:
      kwargs["config"] = tfds.core.BuilderConfig(
          name=config_name(self._pca),
          description=(f"Images reduced to the train images' leading"
                       f" {self._pca} principal components."))
    super().__init__(**kwargs)

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
    if self._pca:
      arrays, kept = pca_images(arrays, self._pca)
      self.info.metadata["image_pca_components"] = self._pca
      self.info.metadata["image_pca_variance_kept"] = kept
    return {s: self._generate_examples(arrays[s]) for s in SPLITS}

  def _generate_examples(self, a):
    for i in range(a["label"].shape[0]):
      yield i, {
          "image": a["image"][i][..., None],
          "audio": a["audio"][i][..., None],
          "label": int(a["label"][i]),
          "voice": int(a["voice"][i]),
      }


def config_name(k: int) -> str | None:
  """The BuilderConfig (and folder) name of ``k`` components; None at 0."""
  return f"pca{k}" if k else None


def prepare(data_dir, asset_path=None, image_pca_components=0) -> Avdigits:
  """Returns a builder whose dataset is prepared in `data_dir`, checked
  (``prepare.prepared``: DataError for a bad asset or data directory).

  ``image_pca_components`` (data.image_pca_components) k > 0 prepares the
  images reduced to k principal components, into ``avdigits/pca<k>/``;
  a bad value is a DataError before anything is read or written.
  """
  k = pca_components(image_pca_components)
  asset_path = pathlib.Path(asset_path or PACKAGED_ASSET)
  source = prepare_lib.packaged_source(
      asset_path, lambda path: load_asset(path, VERSION))
  asset_stale = source.stale_reason

  def stale_reason(builder):
    recorded = (builder.info.metadata or {}).get("image_pca_components", 0)
    if recorded != k:
      return f"with {PCA_KEY} = {recorded}, not {k}"
    return asset_stale(builder)
  return prepare_lib.prepared(
      Avdigits, data_dir,
      dataclasses.replace(source, stale_reason=stale_reason),
      asset_path=asset_path, image_pca_components=k)


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
  """Registry factory: prepares (if needed) and returns the avdigits Dataset.

  data_config keys (read with .get): data_dir, asset_path,
  image_pca_components (0), augment, and the pipeline's (``get_dataset``).
  """
  k = pca_components(data_config.get("image_pca_components"))
  builder = prepare(data_config.get("data_dir"), data_config.get("asset_path"),
                    image_pca_components=k)
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
