"""Datasets prepared from an asset shipped inside the package (avdigits,
clipart): preparation on first use and the checks of what was prepared.

The builder records the asset's sha256 in its metadata (``asset_sha256``); a
prepared dataset made from another version of the asset is refused as stale
rather than silently reused. Every failure is a DataError naming the data
directory and what to do.
"""
import hashlib
import os
import pathlib
import tempfile
from typing import Any, Callable, Sequence

import tensorflow_datasets as tfds

from ume_jax.data.errors import DataError


def sha256(path) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()


def dir_error(name: str, version: str, directory, what: str) -> DataError:
  return DataError(
      f"{name} data directory {os.fspath(directory)!r}: {what}. The input"
      f" pipeline prepares {name} there (as ArrayRecord files under"
      f" {name}/{version}/) from the packaged asset on first use; point"
      " data.data_dir at a writable directory, or delete the broken dataset"
      " folder so it is prepared again.")


def prepare(builder_cls, *, data_dir, asset_path: pathlib.Path,
            check_asset: Callable[[pathlib.Path], Any],
            splits: Sequence[str]):
  """A ``builder_cls`` whose dataset is prepared in ``data_dir``, checked.

  Prepares from ``asset_path`` if needed (``check_asset`` reads it first, so
  a bad asset fails before tfds runs). Raises DataError for a bad asset, an
  unusable ``data_dir``, or a broken/partial/stale prepared dataset.
  """
  name, version = builder_cls.name, str(builder_cls.VERSION)
  error = lambda what: dir_error(name, version, data_dir, what)
  data_dir = pathlib.Path(os.path.expanduser(os.fspath(data_dir)))
  if data_dir.exists() and not data_dir.is_dir():
    raise error("exists but is not a directory")
  try:
    builder = builder_cls(data_dir=os.fspath(data_dir), asset_path=asset_path)
  except Exception as e:  # tfds raises assorted errors on a corrupt info file.
    raise error(f"holds an unreadable {name}/{version} dataset"
                f" ({type(e).__name__}: {e})") from e
  if not builder.is_prepared():
    if os.path.exists(builder.data_dir):
      raise error(f"{builder.data_dir!r} holds a partial dataset (no"
                  " dataset_info.json, so preparation never finished)")
    try:
      data_dir.mkdir(parents=True, exist_ok=True)
      with tempfile.NamedTemporaryFile(dir=data_dir, prefix=".write_test"):
        pass
    except OSError as e:
      raise error(f"not a writable directory ({e})") from e
    check_asset(asset_path)
    try:
      tfds.disable_progress_bar()  # a seconds-long job; keep logs readable
      builder.download_and_prepare(
          download_dir=os.fspath(data_dir / "downloads"))
    except DataError:
      raise
    except OSError as e:
      raise error(f"preparing failed ({e})") from e
  _verify(builder, splits, asset_path, error)
  return builder


def _verify(builder, splits: Sequence[str], asset_path: pathlib.Path,
            error: Callable[[str], DataError]) -> None:
  """The prepared splits are complete and were made from this asset."""
  where = builder.data_dir
  for split in splits:
    info = builder.info.splits.get(split)
    if info is None or info.num_examples <= 0:
      raise error(f"the prepared dataset in {where!r} has no {split!r} split")
    try:
      source = builder.as_data_source(split)
      n = len(source)
      source[0], source[n - 1]  # pylint: disable=pointless-statement
    except Exception as e:  # array_record raises RuntimeError/ValueError/...
      raise error(f"split {split!r} of the prepared dataset in {where!r}"
                  f" cannot be read ({type(e).__name__}: {e})") from e
    if n != info.num_examples:
      raise error(f"split {split!r} in {where!r} has {n} records, its"
                  f" dataset_info says {info.num_examples}")
  recorded = (builder.info.metadata or {}).get("asset_sha256")
  if recorded and asset_path.is_file() and recorded != sha256(asset_path):
    raise error(f"the dataset in {where!r} was prepared from a different"
                f" version of {os.fspath(asset_path)!r} (sha256 differs), so"
                " it is stale")
