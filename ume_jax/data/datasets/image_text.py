"""Shared by the image+text datasets (MM-IMDB, UPMC Food-101): the builder
base class, their preparation from data.manual_dir, their front ends and the
registry loader.

Front ends (the same keys for both datasets):

* image: ``data.image_processor`` "" (default) keeps the datasets' own: a
  bilinear stretch to ``data.image_size``, ImageNet mean / std. Set to a
  Hugging Face snapshot folder (or its ``preprocessor_config.json``) it is
  that image tower's (``frontends/image_processor.py``): its resize and
  centre crop are applied when the dataset is PREPARED (the stored uint8
  image is the processor's, at its output size, so the crop is not redone
  per epoch), its rescale and mean / std at load. ``data.image_size`` must
  then be unset / empty or that output size.
* text: ``data.tokenizer`` "wordpiece" (default): a WordPiece vocabulary of
  ``data.vocab_size`` trained on the train split and cached beside the
  prepared data (``frontends/text_tokenizer.py``); "snapshot": the
  pre-trained tokenizer of ``data.tokenizer_path`` (a snapshot folder or
  its ``tokenizer.json``; ``frontends/pretrained_tokenizer.py``), nothing
  trained, data.vocab_size unused. Either gives int32 ``(data.max_len,)``
  ids padded with 0; the Dataset's ``vocab_sizes["text"]`` is the
  tokenizer's vocabulary size (checked against the text tower's).
"""

import dataclasses
import json
import pathlib

import numpy as np
import tensorflow_datasets as tfds
import tokenizers
from PIL import Image

from ume_jax.data import pipeline
from ume_jax.data import prepare as prepare_lib
from ume_jax.data import transforms
from ume_jax.data.errors import DataError
from ume_jax.data.frontends import image_processor as image_processor_lib
from ume_jax.data.frontends import pretrained_tokenizer
from ume_jax.data.frontends import text_tokenizer
from ume_jax.data.frontends.image_processor import Geometry
from ume_jax.data.prepare import SPLITS
from ume_jax.data.spec import DatasetSpec

# ImageNet statistics: posters and food photos are natural images.
STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
TOKENIZERS = ("wordpiece", "snapshot")


class ImageTextBuilder(prepare_lib.ArrayRecordBuilder, skip_registration=True):
  """Base of image+text builders: features, size, manual dir.

  Subclasses set NUM_CLASSES (multi-label) or record metadata["classes"]
  (single-label), MULTILABEL, DESCRIPTION, VERSION, FINGERPRINT (what their
  metadata["fingerprint"] compares, for messages), IMAGE_SIZE (the default
  data.image_size) and define ``_split_generators`` / ``_generate_examples``
  (items that cannot be read go to ``self._bad``, a ``prepare.BadItems``);
  ``check_manual_dir`` of their module is called before tfds runs.

  The prepared dataset is named by what shapes its stored records
  (``_config_name``): at the defaults it has no config name, so it is
  ``<name>/<version>/``, the folder of the datasets prepared before there
  were names; any other image size or resize (``Geometry.name``: a
  processor's ``s224x224-short224-bicubic``, ``s32x32-bicubic``, ...) is a
  tfds BuilderConfig of that name (``<name>/s32x32/<version>/``), beside
  it, so two front ends never share a folder. Tokenisation and the image's
  rescale / normalisation happen at load (``load_image_text``), so
  data.tokenizer, data.vocab_size, data.max_len and the processor's mean /
  std are not in the name; neither is data.max_bad_fraction (the same
  files give the same records or fail).
  """

  NUM_CLASSES = 0
  MULTILABEL = False
  DESCRIPTION = ""
  FINGERPRINT = ""
  IMAGE_SIZE = (128, 80)

  def __init__(self, *, manual=None, image_size=None, geometry=None,
               max_bad_fraction=None, **kwargs):
    """``geometry`` (a ``Geometry``, e.g. a processor's) or else a bilinear
    stretch to ``image_size`` (default IMAGE_SIZE) makes the stored image."""
    self._manual = manual
    self._geometry = geometry or Geometry.stretch(
        image_size or self.IMAGE_SIZE)
    self._image_size = self._geometry.output_size
    self._max_bad_fraction = prepare_lib.max_bad_fraction(max_bad_fraction)
    self._bad = None  # a prepare.BadItems while preparing
    name = self._config_name()
    if name:
      kwargs["config"] = tfds.core.BuilderConfig(name=name)
    super().__init__(**kwargs)

  def _config_name(self) -> str | None:
    """The BuilderConfig name of these options; None at the defaults."""
    if self._default_shape():
      return None
    return self._shape_name()

  def _default_shape(self) -> bool:
    return self._geometry == Geometry.stretch(self.IMAGE_SIZE)

  def _shape_name(self) -> str:
    """``s<H>x<W>`` (a bilinear stretch) or ``Geometry.name``'s longer
    name for other resizes."""
    return self._geometry.name()

  def _shape_metadata(self) -> dict:
    """What shapes the stored images, as recorded in the metadata (and
    compared, ``prepare``'s options)."""
    return {"image_size": list(self._image_size),
            "image_processor": self._geometry.describe()}

  def _info(self) -> tfds.core.DatasetInfo:
    if self.MULTILABEL:
      label = tfds.features.Tensor(shape=(self.NUM_CLASSES,), dtype=np.uint8,
                                   encoding=tfds.features.Encoding.BYTES)
    else:  # class count from the user's files: metadata["classes"]
      label = tfds.features.Tensor(shape=(), dtype=np.int32)
    return self.dataset_info_from_configs(
        description=self.DESCRIPTION,
        features=tfds.features.FeaturesDict({
            # Tensor, not Image/Text (those need TensorFlow); BYTES stores
            # the raw uint8 buffer; strings are stored as bytes.
            "image": tfds.features.Tensor(
                shape=self._image_size + (3,), dtype=np.uint8,
                encoding=tfds.features.Encoding.BYTES),
            "text": tfds.features.Tensor(shape=(), dtype=np.object_),
            "label": label,
            "id": tfds.features.Tensor(shape=(), dtype=np.object_),
        }),
        supervised_keys=None,
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict(),
    )

  def _resize(self, im: Image.Image) -> np.ndarray:
    """uint8 (H, W, 3): RGB, resized (and cropped) by the geometry."""
    return self._geometry.apply(im)

  def _read_image(self, path: pathlib.Path) -> np.ndarray:
    """The image file at ``path``, resized; ``prepare.BadItem`` naming it if
    it cannot be decoded (a damaged copy shows only here, while
    preparing)."""
    try:
      with Image.open(path) as im:
        return self._resize(im)
    # PIL: not an image, truncated, ...
    except (OSError, ValueError, SyntaxError,
            Image.DecompressionBombError) as e:
      raise prepare_lib.BadItem(
          path, f"{type(e).__name__}: {e}; probably truncated or corrupt"
      ) from e

  def _start_bad_items(self, manual_dir, totals: dict) -> None:
    """Counts unreadable items from here on: ``totals`` {split: items}."""
    self._bad = prepare_lib.BadItems(self.name, manual_dir,
                                     self._max_bad_fraction,
                                     self.info.metadata)
    for split, n in totals.items():
      self._bad.expect(split, n)


def geometry(image_size, image_processor, default_size) -> Geometry:
  """What makes the stored images: ``image_processor`` (data.image_processor:
  "" / None, a path, an ``ImageProcessor`` or a ``Geometry``) or else a
  bilinear stretch to ``image_size`` (data.image_size, default
  ``default_size``). With a processor, ``image_size`` must be unset / empty
  or its output size, else DataError naming both."""
  if not image_processor:
    return Geometry.stretch(image_size or default_size)
  where = ""
  if isinstance(image_processor, image_processor_lib.ImageProcessor):
    where = image_processor.path
    image_processor = image_processor.geometry
  elif not isinstance(image_processor, Geometry):
    where = str(image_processor)
    image_processor = image_processor_lib.read(image_processor).geometry
  out = image_processor.output_size
  if image_size and tuple(int(x) for x in image_size) != out:
    raise DataError(
        f"data.image_size = {tuple(image_size)} but data.image_processor"
        f" {where!r} makes {out[0]} x {out[1]} images (its resize and centre"
        " crop); leave data.image_size empty (it follows the processor) or"
        f" set it to {out}.")
  return image_processor


def prepare(builder_cls, data_dir, manual_dir, image_size, check_manual,
            options=None, max_bad_fraction=None, image_processor=None,
            **builder_kwargs):
  """Returns a builder whose dataset is prepared in `data_dir`, checked.

  Prepares from `manual_dir` if needed (``check_manual(manual_dir)`` checks
  its layout first and returns a dict holding its "fingerprint"), skipping
  up to `max_bad_fraction` (data.max_bad_fraction) of each split's items
  that cannot be read. Images are stretched (bilinear) to `image_size`, or
  made by `image_processor` (see ``geometry``). Each image shape and resize
  (and subclass options that shape the records) has its own folder
  (``ImageTextBuilder``). Once prepared `manual_dir` may be absent; if
  present, its fingerprint must match the one recorded, and the image size
  and resize and `options` ({data.* key: value}) the ones recorded, else
  DataError (stale).
  """
  geom = geometry(image_size, image_processor, builder_cls.IMAGE_SIZE)
  image_size = geom.output_size
  max_bad_fraction = prepare_lib.max_bad_fraction(max_bad_fraction)
  source = prepare_lib.manual_dir_source(
      manual_dir, check_manual, lambda d: check_manual(d)["fingerprint"],
      compared=builder_cls.FINGERPRINT,
      # Datasets prepared before image_processor was recorded lack it: not
      # compared (they were all bilinear stretches, as named).
      options={"image_size": list(image_size),
               "image_processor": geom.describe(), **(options or {})})
  stale_reason = source.stale_reason

  def stale_with_hint(builder):
    reason = stale_reason(builder)
    if reason and reason.startswith("with data.image_size") and (
        builder.builder_config is None):
      reason += (" (by an older version, which prepared every image size"
                 " into this one folder; other sizes now have folders of"
                 " their own beside it)")
    return reason
  source = dataclasses.replace(source, stale_reason=stale_with_hint)
  return prepare_lib.prepared(builder_cls, data_dir, source,
                              manual=manual_dir, geometry=geom,
                              max_bad_fraction=max_bad_fraction,
                              **builder_kwargs)


@dataclasses.dataclass(frozen=True)
class FrontEnd:
  """The front ends a data config asks for, checked before any preparation
  (a wrong path fails in seconds, not after preparing).

  Attributes:
    geometry: resize + crop of the stored images.
    image_stats: (mean, std) of image / 255 at load.
    max_len: ids per text.
    tokenizer: data.tokenizer ("wordpiece" or "snapshot").
    snapshot: the snapshot's tokenizer (``tokenizer == "snapshot"``).
  """

  geometry: Geometry
  image_stats: tuple
  max_len: int
  tokenizer: str
  snapshot: tokenizers.Tokenizer | None = None

  @property
  def image_size(self) -> tuple[int, int]:
    return self.geometry.output_size


def front_end(data_config, name: str, default_size, default_stats,
              default_max_len: int) -> FrontEnd:
  """data.image_processor / image_size and data.tokenizer / tokenizer_path
  / max_len, read and checked (DataError naming the key at fault)."""
  max_len = int(data_config.get("max_len") or default_max_len)
  kind = data_config.get("tokenizer") or "wordpiece"
  if kind not in TOKENIZERS:
    raise DataError(f"{name}: data.tokenizer = {kind!r}; expected one of"
                    f" {list(TOKENIZERS)} (\"wordpiece\": trained on the"
                    " train split; \"snapshot\": the tokenizer.json of"
                    " data.tokenizer_path).")
  snapshot = (pretrained_tokenizer.load(data_config.get("tokenizer_path"),
                                        max_len)
              if kind == "snapshot" else None)
  path = data_config.get("image_processor") or ""
  if path:
    proc = image_processor_lib.read(path)
    geom = geometry(data_config.get("image_size"), proc, default_size)
    stats = proc.image_stats()
  else:
    geom = geometry(data_config.get("image_size"), None, default_size)
    stats = default_stats
  return FrontEnd(geom, stats, max_len, kind, snapshot)


def _wordpiece(builder, data_config, train_source) -> tokenizers.Tokenizer:
  meta = builder.info.metadata or {}
  source_key = json.dumps([builder.name, str(builder.version),
                           meta.get("fingerprint"),
                           train_source.__len__()], sort_keys=True)
  # Cached beside the prepared version folder: in <name>/ at the default
  # options, <name>/<config>/ otherwise; each prepared dataset has its own.
  tok, _ = text_tokenizer.cached_tokenizer(
      pathlib.Path(builder.data_dir).parent,
      text_tokenizer.TrainTexts(train_source),
      int(data_config.get("vocab_size") or 8000), source_key)
  return tok


def load_image_text(builder, name: str, data_config,
                    front: FrontEnd) -> pipeline.Dataset:
  """The Dataset ``name`` of an image+text dataset prepared by ``builder``
  with ``front``'s geometry, ``vocab_sizes`` holding the tokenizer's."""
  builder_cls = type(builder)
  image_size = tuple(front.image_size)
  sources = {s: builder.as_data_source(s) for s in SPLITS}
  max_len = front.max_len
  meta = builder.info.metadata or {}
  tok = (front.snapshot if front.snapshot is not None
         else _wordpiece(builder, data_config, sources["train"]))
  spec = DatasetSpec(
      name=name,
      modalities=("image", "text"),
      input_shapes={"image": image_size + (3,), "text": (max_len,)},
      num_classes=(builder_cls.NUM_CLASSES if builder_cls.MULTILABEL
                   else len(meta["classes"])),
      multilabel=builder_cls.MULTILABEL,
      split_sizes={s: len(src) for s, src in sources.items()},
      input_dtypes={"text": "int32"},
  )
  preprocess = text_tokenizer.TextImagePreprocess(
      image_stats=front.image_stats, tokenizer_json=tok.to_str(),
      max_len=max_len, multilabel=builder_cls.MULTILABEL)
  # Augmentation (data.augment=True): image shifted up to 1/16 of its size.
  augment = (transforms.RandomShift(
      {"image": (image_size[0] // 16, image_size[1] // 16, 0)})
             if data_config.get("augment", False) else None)
  ds = pipeline.Dataset.from_config(
      spec, sources, preprocess, augment, data_config,
      cache_by_default=False)
  ds.vocab_sizes = {"text": pretrained_tokenizer.vocab_size(tok)}
  return ds
