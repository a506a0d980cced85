"""Shared by the image+text datasets (MM-IMDB, UPMC Food-101): the builder
base class, preparing and verifying a data dir, and the registry loader."""

import json
import os
import pathlib
import tempfile

from etils import epath
import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from ume_jax.data import pipeline
from ume_jax.data.frontends import text_tokenizer
from ume_jax.data import transforms
from ume_jax.data.errors import DataError
from ume_jax.data.spec import DatasetSpec

SPLITS = ("train", "validation", "test")
# ImageNet statistics: posters and food photos are natural images.
STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


class _ThisFile:
  """Class-level `code_path`: tfds' default needs `importlib_resources`."""

  def __get__(self, obj, objtype=None):
    return epath.Path(__file__)


class ImageTextBuilder(tfds.core.GeneratorBasedBuilder):
  """Base of image+text builders: features, size, manual dir.

  Subclasses set NUM_CLASSES (multi-label) or record metadata["classes"]
  (single-label), MULTILABEL, DESCRIPTION, VERSION and define
  ``_split_generators`` / ``_generate_examples``; ``check_manual_dir`` of
  their module is called before tfds runs.
  """

  code_path = _ThisFile()
  NUM_CLASSES = 0
  MULTILABEL = False
  DESCRIPTION = ""

  def __init__(self, *, manual=None, image_size=(128, 80), **kwargs):
    self._manual = manual
    self._image_size = tuple(int(x) for x in image_size)
    kwargs.setdefault("file_format", "array_record")
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


def _dir_error(name, directory, what: str) -> DataError:
  return DataError(
      f"{name} data directory {os.fspath(directory)!r}: {what}. The input"
      f" pipeline prepares {name} there (as ArrayRecord files) from"
      " data.manual_dir on first use; point data.data_dir at a writable"
      " directory, or delete the dataset folder so it is prepared again.")


def prepare(builder_cls, data_dir, manual_dir, image_size, check_manual,
            **builder_kwargs):
  """Returns a builder whose dataset is prepared in `data_dir`, checked.

  Prepares from `manual_dir` if needed (checking its layout first). Once
  prepared `manual_dir` may be absent; if present, its fingerprint and
  `image_size` must match those recorded, else DataError (stale).
  """
  name = builder_cls.name
  data_dir = pathlib.Path(os.path.expanduser(os.fspath(data_dir)))
  if data_dir.exists() and not data_dir.is_dir():
    raise _dir_error(name, data_dir, "exists but is not a directory")
  try:
    builder = builder_cls(data_dir=os.fspath(data_dir), manual=manual_dir,
                          image_size=image_size, **builder_kwargs)
  except Exception as e:  # tfds raises assorted errors on a corrupt info file.
    raise _dir_error(name, data_dir, "holds an unreadable prepared dataset "
                     f"({type(e).__name__}: {e})") from e
  if not builder.is_prepared():
    if os.path.exists(builder.data_dir):
      raise _dir_error(name, data_dir, f"{builder.data_dir!r} holds a partial"
                       " dataset (no dataset_info.json, so preparation never"
                       " finished)")
    check_manual(manual_dir)  # Fail early, before tfds runs.
    try:
      data_dir.mkdir(parents=True, exist_ok=True)
      with tempfile.NamedTemporaryFile(dir=data_dir, prefix=".write_test"):
        pass
    except OSError as e:
      raise _dir_error(name, data_dir, f"not a writable directory ({e})"
                       ) from e
    try:
      tfds.disable_progress_bar()
      builder.download_and_prepare(
          download_dir=os.fspath(data_dir / "downloads"))
    except DataError:
      raise
    except OSError as e:
      raise _dir_error(name, data_dir, f"preparing failed ({e})") from e
  _verify(builder, data_dir, manual_dir, image_size, check_manual)
  return builder


def _verify(builder, data_dir, manual_dir, image_size, check_manual):
  name, where = builder.name, builder.data_dir
  for split in SPLITS:
    info = builder.info.splits.get(split)
    if info is None or info.num_examples <= 0:
      raise _dir_error(name, data_dir, f"the prepared dataset in {where!r}"
                       f" has no {split!r} split")
    try:
      source = builder.as_data_source(split)
      n = len(source)
      source[0], source[n - 1]  # pylint: disable=pointless-statement
    except Exception as e:  # array_record raises RuntimeError/ValueError/...
      raise _dir_error(name, data_dir, f"split {split!r} of the prepared"
                       f" dataset in {where!r} cannot be read"
                       f" ({type(e).__name__}: {e})") from e
  meta = builder.info.metadata or {}
  if list(meta.get("image_size", image_size)) != list(image_size):
    raise _dir_error(name, data_dir, f"the dataset in {where!r} was prepared"
                     f" with data.image_size = {meta['image_size']}, not"
                     f" {list(image_size)}, so it is stale")
  if manual_dir and os.path.isdir(os.path.expanduser(os.fspath(manual_dir))):
    found = check_manual(manual_dir)
    if meta.get("fingerprint") and meta["fingerprint"] != found["fingerprint"]:
      raise _dir_error(name, data_dir, f"the dataset in {where!r} was"
                       f" prepared from other files than those in"
                       f" {os.fspath(manual_dir)!r}, so it is stale")


DEFAULT_DATA_DIR = "~/.cache/ume_jax/tensorflow_datasets"


class _Texts:
  """The train split's texts, read only when the tokenizer is (re)trained."""

  def __init__(self, source):
    self._source = source

  def __call__(self):
    return [text_tokenizer.as_str(self._source[i]["text"])
            for i in range(len(self._source))]


def load_image_text(builder_cls, name: str, data_config, image_size, stats,
                    default_max_len: int, check_manual,
                    **builder_kwargs) -> pipeline.Dataset:
  """Prepares (if needed) an image+text dataset and returns its Dataset."""
  image_size = tuple(data_config.get("image_size") or image_size)
  builder = prepare(builder_cls,
                    data_config.get("data_dir") or DEFAULT_DATA_DIR,
                    data_config.get("manual_dir") or None, image_size,
                    check_manual, **builder_kwargs)
  sources = {s: builder.as_data_source(s) for s in SPLITS}
  vocab_size = int(data_config.get("vocab_size") or 8000)
  max_len = int(data_config.get("max_len") or default_max_len)
  meta = builder.info.metadata or {}
  source_key = json.dumps([builder.name, str(builder.version),
                           meta.get("fingerprint"),
                           sources["train"].__len__()], sort_keys=True)
  tok, _ = text_tokenizer.cached_tokenizer(
      pathlib.Path(builder.data_dir).parent, _Texts(sources["train"]),
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
