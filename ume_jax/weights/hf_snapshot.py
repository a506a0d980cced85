"""Hugging Face snapshot folders: finding their files, reading their tensors.

A snapshot folder is what ``save_pretrained`` writes or the hub cache holds
(``~/.cache/huggingface/hub/models--org--name/snapshots/<commit>/``):
``config.json``, ``model.safetensors`` (or shards listed in
``model.safetensors.index.json``), and for the front ends
``tokenizer.json`` / ``preprocessor_config.json``. The cache's model folder
itself (``models--org--name``) is accepted too: its ``refs/main`` names the
snapshot. Only safetensors are read: a folder with only
``pytorch_model.bin`` is refused with the one-line conversion, because a
pickle file is never unpickled.

``Tensors`` is how a family's reader takes the checkpoint's tensors: each by
name with the shape its ``config.json`` implies, so a missing, misshapen or
unexpected tensor is reported, all of them at once, naming the file.
"""
import json
import os
import re
from collections.abc import Iterable, Mapping

import numpy as np
import safetensors

from ume_jax.weights.errors import WeightsError

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"
_PICKLES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
_LAYOUT = ("a Hugging Face snapshot folder (what save_pretrained writes, or"
           " the hub cache's models--<org>--<name>/snapshots/<commit>/):"
           " config.json and model.safetensors, with tokenizer.json /"
           " preprocessor_config.json for the front ends")


def _cache_snapshot(path: str) -> str:
  """The snapshot the hub cache's model folder ``path`` points at (its
  ``refs/main``), or ``path`` itself."""
  ref = os.path.join(path, "refs", "main")
  if not os.path.isfile(os.path.join(path, CONFIG)) and os.path.isfile(ref):
    with open(ref) as f:
      return os.path.join(path, "snapshots", f.read().strip())
  return path


def snapshot_file(path, name: str, key: str, error=WeightsError,
                  file_ok: bool = False) -> str:
  """The file ``name`` of the snapshot that ``path`` (config key ``key``)
  names: a snapshot folder, the hub cache's model folder or, with
  ``file_ok``, the file itself. Otherwise ``error`` in one paragraph naming
  the key, the path and what a snapshot holds."""
  if not path:
    raise error(f"{key} is not set: it must name {_LAYOUT}. Nothing is"
                " downloaded at run time.")
  given = os.path.expanduser(os.fspath(path))
  if os.path.isfile(given) and file_ok:
    return given
  root = _cache_snapshot(given)
  if not os.path.exists(root):
    raise error(f"{key} = {given!r} does not exist; expected {_LAYOUT}.")
  if not os.path.isdir(root):
    raise error(f"{key} = {given!r} is a file; expected {_LAYOUT}.")
  file = os.path.join(root, name)
  if not os.path.isfile(file):
    raise error(f"{key} = {root!r} is a folder without {name}; expected"
                f" {_LAYOUT} (copy the snapshot whole).")
  return file


def folder(path: str, key: str) -> str:
  """The snapshot folder ``path`` names (it must have a config.json)."""
  return os.path.dirname(snapshot_file(path, CONFIG, key))


def read_config(path: str, key: str) -> dict:
  file = snapshot_file(path, CONFIG, key)
  try:
    with open(file) as f:
      config = json.load(f)
  except (OSError, ValueError) as e:
    raise WeightsError(f"{file}: cannot be read as JSON ({e}).") from None
  if not isinstance(config, dict):
    raise WeightsError(f"{file}: expected a JSON object (a model config).")
  return config


class SafetensorsFiles(Mapping):
  """The tensors of one or more safetensors files, read when asked for:
  a reader takes one CLIP tower without loading the other (the headers,
  read up front, say which file holds what)."""

  def __init__(self, files):
    self._where = {}
    for file in files:
      try:
        with safetensors.safe_open(file, framework="numpy") as f:
          self._where.update({k: file for k in f.keys()})
      except (OSError, ValueError, safetensors.SafetensorError) as e:
        raise WeightsError(f"{file}: cannot be read as a safetensors file"
                           f" ({e}).") from None

  def __getitem__(self, key: str) -> np.ndarray:
    with safetensors.safe_open(self._where[key], framework="numpy") as f:
      return f.get_tensor(key)

  def __iter__(self):
    return iter(self._where)

  def __len__(self) -> int:
    return len(self._where)


def load_safetensors(file: str) -> Mapping[str, np.ndarray]:
  return SafetensorsFiles([file])


def read_tensors(path: str, key: str
                 ) -> tuple[Mapping[str, np.ndarray], str]:
  """Every tensor of the snapshot's checkpoint, and where it was read."""
  root = folder(path, key)
  single, index = os.path.join(root, WEIGHTS), os.path.join(root, INDEX)
  if os.path.isfile(single):
    return load_safetensors(single), single
  if os.path.isfile(index):
    try:
      with open(index) as f:
        shards = sorted(set(json.load(f)["weight_map"].values()))
    except (OSError, ValueError, KeyError, AttributeError) as e:
      raise WeightsError(f"{index}: not a safetensors index (needs a"
                         f" \"weight_map\"): {e}.") from None
    return SafetensorsFiles([snapshot_file(root, shard, key)
                             for shard in shards]), index
  pickles = [p for p in _PICKLES if os.path.isfile(os.path.join(root, p))]
  hint = (f" It holds {pickles[0]}, a pickle file, which ume_jax never"
          " unpickles: convert it once, where transformers is installed,"
          " with `AutoModel.from_pretrained(DIR).save_pretrained(DIR,"
          " safe_serialization=True)`." if pickles else "")
  raise WeightsError(f"{root} ({key}) has neither {WEIGHTS} nor {INDEX}."
                     f"{hint} Expected {_LAYOUT}.")


def _some(items: Iterable[str]) -> str:
  items = sorted(items)
  return (", ".join(items[:4]) + (f" and {len(items) - 4} more"
                                  if len(items) > 4 else "")) or "-"


class Tensors:
  """A checkpoint's tensors, taken by name and expected shape."""

  def __init__(self, tensors: Mapping[str, np.ndarray], source: str):
    self._tensors = tensors
    self._source = source
    self._taken: set[str] = set()
    self._missing: list[str] = []
    self._bad: list[str] = []

  def has(self, key: str) -> bool:
    return key in self._tensors

  def untaken(self) -> list[str]:
    """The tensors no reader took (heads, buffers, the other tower)."""
    return sorted(set(self._tensors) - self._taken)

  def take(self, key: str, shape: tuple[int, ...]):
    """The tensor ``key``; zeros of ``shape`` if it is missing or misshapen
    (recorded, and reported by ``finish``)."""
    self._taken.add(key)
    x = self._tensors.get(key)
    if x is None:
      self._missing.append(key)
    elif tuple(x.shape) != tuple(shape):
      self._bad.append(f"{key} {tuple(x.shape)} (expected {tuple(shape)})")
    else:
      return x
    return np.zeros(shape, np.float32)

  def finish(self, scopes: Iterable[str], unused: str, what: str) -> None:
    """Raises if anything was missing or misshapen, or if a tensor under
    one of the ``scopes`` (key prefixes) was neither taken nor matches the
    ``unused`` regex: that is a checkpoint of another architecture."""
    scopes = tuple(scopes)
    unexpected = [k for k in self._tensors
                  if k.startswith(scopes) and k not in self._taken
                  and not re.fullmatch(unused, k)]
    if self._missing or self._bad or unexpected:
      raise WeightsError(
          f"{self._source} does not hold the {what}:"
          f" {len(self._missing)} missing tensors ({_some(self._missing)}),"
          f" {len(unexpected)} unexpected ({_some(unexpected)}),"
          f" {len(self._bad)} with the wrong shape ({_some(self._bad)}).")


def prefix_of(tensors: Tensors, marker: str, prefixes: Iterable[str]) -> str:
  """The first of ``prefixes`` under which the checkpoint has ``marker``
  (e.g. ``bert.`` for BertForPreTraining, ``""`` for BertModel); the first
  prefix if none (its tensors are then reported missing)."""
  prefixes = tuple(prefixes)
  for p in prefixes:
    if tensors.has(p + marker):
      return p
  return prefixes[0]


_REQUIRED = object()


class ConfigValues:
  """A ``config.json`` read key by key, each error naming file and key."""

  def __init__(self, config: dict, file: str):
    self.config = config
    self.file = file

  def get(self, key: str, kind=int, default=_REQUIRED):
    if key not in self.config or self.config[key] is None:
      if default is _REQUIRED:
        raise WeightsError(f"{self.file}: no {key!r}; it is needed to build"
                           " the encoder this checkpoint is for.")
      return default
    value = self.config[key]
    try:
      return kind(value)
    except (TypeError, ValueError):
      raise WeightsError(f"{self.file}: {key} = {value!r} is not a"
                         f" {kind.__name__}.") from None

  def require(self, key: str, expected, default, why: str) -> None:
    """Refuses a value this port does not implement."""
    value = self.config.get(key, default)
    if value != expected:
      raise WeightsError(f"{self.file}: {key} = {value!r}; ume_jax's port"
                         f" supports only {expected!r} ({why}).")

  def sub(self, key: str) -> "ConfigValues":
    """A nested config (CLIP's text_config / vision_config)."""
    value = self.config.get(key) or {}
    if not isinstance(value, dict):
      raise WeightsError(f"{self.file}: {key} is not a JSON object.")
    return ConfigValues(value, f"{self.file} ({key})")


def config_values(path: str, key: str) -> ConfigValues:
  return ConfigValues(read_config(path, key), snapshot_file(path, CONFIG, key))


def read_checkpoint(path: str, key: str, convert) -> dict:
  """``convert(Tensors, ConfigValues)`` over the snapshot at ``path``, as
  contiguous float32 numpy arrays."""
  config = config_values(path, key)
  tensors, source = read_tensors(path, key)
  tree = convert(Tensors(tensors, source), config)
  return as_float32(tree)


def as_float32(tree):
  if isinstance(tree, dict):
    return {k: as_float32(v) for k, v in tree.items()}
  return np.ascontiguousarray(tree, dtype=np.float32)
