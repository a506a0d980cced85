"""Shared by the image+text datasets (MM-IMDB, UPMC Food-101): the builder
base class, their preparation from data.manual_dir and the registry
loader."""

import json
import os
import pathlib

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from ume_jax.data import pipeline
from ume_jax.data import prepare as prepare_lib
from ume_jax.data import transforms
from ume_jax.data.errors import DataError
from ume_jax.data.frontends import text_tokenizer
from ume_jax.data.prepare import SPLITS
from ume_jax.data.spec import DatasetSpec

# ImageNet statistics: posters and food photos are natural images.
STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


class ImageTextBuilder(prepare_lib.ArrayRecordBuilder, skip_registration=True):
  """Base of image+text builders: features, size, manual dir.

  Subclasses set NUM_CLASSES (multi-label) or record metadata["classes"]
  (single-label), MULTILABEL, DESCRIPTION, VERSION, FINGERPRINT (what their
  metadata["fingerprint"] compares, for messages) and define
  ``_split_generators`` / ``_generate_examples``; ``check_manual_dir`` of
  their module is called before tfds runs.
  """

  NUM_CLASSES = 0
  MULTILABEL = False
  DESCRIPTION = ""
  FINGERPRINT = ""

  def __init__(self, *, manual=None, image_size=(128, 80), **kwargs):
    self._manual = manual
    self._image_size = tuple(int(x) for x in image_size)
    super().__init__(**kwargs)

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
    """The image file at ``path``, resized; DataError naming it if it cannot
    be decoded (a damaged copy shows only here, while preparing)."""
    try:
      with Image.open(path) as im:
        return self._resize(im)
    except (OSError, ValueError) as e:  # PIL: not an image, truncated, ...
      raise DataError(
          f"{self.name} image {os.fspath(path)!r} cannot be decoded"
          f" ({type(e).__name__}: {e}); it is probably truncated or corrupt:"
          " copy it again from the original archive.") from e


def prepare(builder_cls, data_dir, manual_dir, image_size, check_manual,
            options=None, **builder_kwargs):
  """Returns a builder whose dataset is prepared in `data_dir`, checked.

  Prepares from `manual_dir` if needed (``check_manual(manual_dir)`` checks
  its layout first and returns a dict holding its "fingerprint"). Once
  prepared `manual_dir` may be absent; if present, its fingerprint must
  match the one recorded, and `image_size` and `options` ({data.* key:
  value}) the ones recorded, else DataError (stale).
  """
  image_size = tuple(int(x) for x in image_size)
  source = prepare_lib.manual_dir_source(
      manual_dir, check_manual, lambda d: check_manual(d)["fingerprint"],
      compared=builder_cls.FINGERPRINT,
      options={"image_size": list(image_size), **(options or {})})
  return prepare_lib.prepared(builder_cls, data_dir, source,
                              manual=manual_dir, image_size=image_size,
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
