"""Tiny fake avdigits assets for tests (same format as the real asset)."""

import json

import numpy as np

SPLITS = ("train", "validation", "test")
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
  from ume_jax.data import avdigits  # pylint: disable=g-import-not-at-top
  mean, std = avdigits.STATS["image"]
  px = np.rint((np.asarray(image)[:, 0, :2, 0] * std + mean) * 255)
  return (px[:, 0] + 256 * px[:, 1]).astype(np.int64)
