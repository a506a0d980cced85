"""Shared by the image+text datasets (MM-IMDB, UPMC Food-101): the builder
base class, their preparation from data.manual_dir and the registry
loader."""

import dataclasses
import json
import os
import pathlib

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from ume_jax.data import pipeline
from ume_jax.data import prepare as prepare_lib
from ume_jax.data import transforms
from ume_jax.data.frontends import text_tokenizer
from ume_jax.data.prepare import SPLITS
from ume_jax.data.spec import DatasetSpec

# ImageNet statistics: posters and food photos are natural images.
STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


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
  were names; any other image size is a tfds BuilderConfig named
  ``s<H>x<W>`` (``<name>/s32x32/<version>/``), beside it. Tokenisation
  happens at load (``load_image_text``), so data.vocab_size and
  data.max_len do not shape the stored records and are not in the name;
  neither is data.max_bad_fraction (the same files give the same records
  or fail).
  """

  NUM_CLASSES = 0
  MULTILABEL = False
  DESCRIPTION = ""
  FINGERPRINT = ""
  IMAGE_SIZE = (128, 80)

  def __init__(self, *, manual=None, image_size=None, max_bad_fraction=None,
               **kwargs):
    self._manual = manual
    self._image_size = tuple(int(x) for x in (image_size or self.IMAGE_SIZE))
    self._max_bad_fraction = prepare_lib.max_bad_fraction(max_bad_fraction)
    self._bad = None  # a prepare.BadItems while preparing
    name = self._config_name()
    if name:
      kwargs["config"] = tfds.core.BuilderConfig(name=name)
    super().__init__(**kwargs)

  def _config_name(self) -> str | None:
    """The BuilderConfig name of these options; None at the defaults."""
    if self._image_size == tuple(self.IMAGE_SIZE):
      return None
    return self._size_name()

  def _size_name(self) -> str:
    h, w = self._image_size
    return f"s{h}x{w}"

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
    h, w = self._image_size
    im = im.convert("RGB").resize((w, h), Image.BILINEAR)
    return np.asarray(im, np.uint8)

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


def prepare(builder_cls, data_dir, manual_dir, image_size, check_manual,
            options=None, max_bad_fraction=None, **builder_kwargs):
  """Returns a builder whose dataset is prepared in `data_dir`, checked.

  Prepares from `manual_dir` if needed (``check_manual(manual_dir)`` checks
  its layout first and returns a dict holding its "fingerprint"), skipping
  up to `max_bad_fraction` (data.max_bad_fraction) of each split's items
  that cannot be read. Each `image_size` (and subclass options that shape
  the records) has its own folder (``ImageTextBuilder``). Once prepared
  `manual_dir` may be absent; if present, its fingerprint must match the
  one recorded, and `image_size` and `options` ({data.* key: value}) the
  ones recorded, else DataError (stale).
  """
  image_size = tuple(int(x) for x in image_size)
  max_bad_fraction = prepare_lib.max_bad_fraction(max_bad_fraction)
  source = prepare_lib.manual_dir_source(
      manual_dir, check_manual, lambda d: check_manual(d)["fingerprint"],
      compared=builder_cls.FINGERPRINT,
      options={"image_size": list(image_size), **(options or {})})
  stale_reason = source.stale_reason

  def stale_with_hint(builder):
    reason = stale_reason(builder)
    if reason and reason.startswith("with data.") and (
        builder.builder_config is None):
      reason += (" (by an older version, which prepared every image size"
                 " into this one folder; other sizes now have folders of"
                 " their own beside it)")
    return reason
  source = dataclasses.replace(source, stale_reason=stale_with_hint)
  return prepare_lib.prepared(builder_cls, data_dir, source,
                              manual=manual_dir, image_size=image_size,
                              max_bad_fraction=max_bad_fraction,
                              **builder_kwargs)


def load_image_text(builder, name: str, data_config, image_size, stats,
                    default_max_len: int) -> pipeline.Dataset:
  """The Dataset ``name`` of an image+text dataset prepared by ``builder``
  with ``image_size``."""
  builder_cls = type(builder)
  image_size = tuple(image_size)
  sources = {s: builder.as_data_source(s) for s in SPLITS}
  vocab_size = int(data_config.get("vocab_size") or 8000)
  max_len = int(data_config.get("max_len") or default_max_len)
  meta = builder.info.metadata or {}
  source_key = json.dumps([builder.name, str(builder.version),
                           meta.get("fingerprint"),
                           sources["train"].__len__()], sort_keys=True)
  # Cached beside the prepared version folder: in <name>/ at the default
  # options, <name>/<config>/ otherwise; each prepared dataset has its own.
  tok, _ = text_tokenizer.cached_tokenizer(
      pathlib.Path(builder.data_dir).parent,
      text_tokenizer.TrainTexts(sources["train"]),
      vocab_size, source_key)
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
      image_stats=stats, tokenizer_json=tok.to_str(), max_len=max_len,
      multilabel=builder_cls.MULTILABEL)
  # Augmentation (data.augment=True): image shifted up to 1/16 of its size.
  augment = (transforms.RandomShift(
      {"image": (image_size[0] // 16, image_size[1] // 16, 0)})
             if data_config.get("augment", False) else None)
  return pipeline.Dataset.from_config(
      spec, sources, preprocess, augment, data_config,
      cache_by_default=False)
