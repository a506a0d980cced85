"""The one fakes module of the test suite: tiny specs, configs, batches and
fake datasets in the real on-disk formats.

- core pieces: ``SPEC``, ``tiny_config``, ``batch``;
- avdigits-format assets: ``make_arrays`` / ``write_asset`` (index readable
  back from each example, ``ids_from_image``) and ``make_learnable_asset``
  (class prototypes + noise, so scores move with training).
"""
import json

import numpy as np

from ume_jax import methods
from ume_jax.config import common
from ume_jax.data import DatasetSpec
from ume_jax.missing.masking import MaskingSpec

SPLITS = ("train", "validation", "test")

SPEC = DatasetSpec(
    name="tiny", modalities=("image", "audio"),
    input_shapes={"image": (8, 8, 1), "audio": (12, 8, 1)}, num_classes=4,
    multilabel=False, split_sizes={"train": 64, "validation": 16, "test": 16})


def tiny_config():
  c = common.base()
  small = {"channels": (8, 16), "strides": (2, 2), "feature_dim": 32}
  for m in ("image", "audio"):
    c.model.encoders[m].kwargs = dict(small)
  c.pretrain.num_epochs = 1
  c.pretrain.batch_size = 16
  return c


def unimodal(config, spec, m, means=None):
  """``methods.unimodal`` for a whole test config."""
  return methods.unimodal(config.model, spec, m, MaskingSpec.from_config(
      config, spec.modalities, means))


def fusion(config, spec, name, means=None):
  """``methods.fusion`` for a whole test config."""
  return methods.fusion(config.model, spec, name, MaskingSpec.from_config(
      config, spec.modalities, means))


def batch(size=16, seed=0, spec=SPEC, with_eval_keys=False):
  rng = np.random.default_rng(seed)
  b = {m: rng.normal(size=(size,) + spec.input_shapes[m]).astype(np.float32)
       for m in spec.modalities}
  b["label"] = rng.integers(0, spec.num_classes, size).astype(np.int32)
  b["present"] = np.ones((size, len(spec.modalities)), bool)
  if with_eval_keys:
    b["valid"] = np.ones(size, bool)
    b["index"] = np.arange(size, dtype=np.int32)
  return b


def make_learnable_asset(path, sizes=None, seed=0, audio_noise=1.6):
  sizes = sizes or {"train": 320, "validation": 80, "test": 120}
  rng = np.random.default_rng(seed)
  protos = {"image": rng.normal(size=(10, 28, 28)),
            "audio": rng.normal(size=(10, 40, 40))}
  noise = {"image": 0.8, "audio": audio_noise}
  arrays = {}
  for s in SPLITS:
    n = sizes[s]
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    for m in ("image", "audio"):
      x = protos[m][labels] + noise[m] * rng.normal(size=(n,) + protos[m].shape[1:])
      arrays[f"{m}_{s}"] = np.clip(128 + 40 * x, 0, 255).astype(np.uint8)
    arrays[f"label_{s}"] = labels.astype(np.uint8)
    arrays[f"voice_{s}"] = np.zeros(n, np.int16)
  meta = {"name": "avdigits", "version": "1.0.0", "seed": seed,
          "splits": {s: {"num_examples": sizes[s]} for s in SPLITS}}
  arrays["meta"] = np.array(json.dumps(meta))
  np.savez(path, **arrays)
  return str(path)


SIZES = {"train": 50, "validation": 20, "test": 30}


def make_arrays(sizes=None, seed=0) -> dict:
  """Fake asset arrays; example i of a split has image[0,0]=i%256,
  image[0,1]=i//256 and voice=i, so an example's index can be read back."""
  sizes = sizes or SIZES
  rng = np.random.default_rng(seed)
  d = {}
  for s in SPLITS:
    n = sizes[s]
    image = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    image[:, 0, 0] = np.arange(n) % 256
    image[:, 0, 1] = np.arange(n) // 256
    d[f"image_{s}"] = image
    d[f"audio_{s}"] = rng.integers(0, 256, (n, 40, 40), dtype=np.uint8)
    d[f"label_{s}"] = rng.integers(0, 10, (n,), dtype=np.uint8)
    d[f"voice_{s}"] = np.arange(n, dtype=np.int16)
  meta = {"name": "avdigits", "version": "1.0.0", "seed": seed,
          "splits": {s: {"num_examples": sizes[s]} for s in SPLITS}}
  d["meta"] = np.array(json.dumps(meta))
  return d


def write_asset(path, arrays=None):
  arrays = make_arrays() if arrays is None else arrays
  np.savez(path, **arrays)
  return path


def ids_from_image(image) -> np.ndarray:
  """Example indices from standardised (unaugmented) image batch (B,28,28,1)."""
  from ume_jax.data.datasets import avdigits  # pylint: disable=g-import-not-at-top
  mean, std = avdigits.STATS["image"]
  px = np.rint((np.asarray(image)[:, 0, :2, 0] * std + mean) * 255)
  return (px[:, 0] + 256 * px[:, 1]).astype(np.int64)
