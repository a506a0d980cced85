"""Preparing a dataset on first use and checking what was prepared: the one
mechanism every dataset uses.

A dataset is prepared by its tensorflow-datasets builder (ArrayRecord files,
no TensorFlow) into ``data.data_dir`` the first time it is loaded; later loads
only read and check it. It is prepared from a `Source`: an asset shipped in
the package (``PACKAGED``: avdigits, clipart) or the user's own files
(``MANUAL_DIR``: the others). That is all that differs between datasets: how
the source is checked before tfds runs, and how a prepared dataset made from
another version of it (or with other options) is told apart - its builder
records what it was made from in the dataset's metadata.

``prepared(builder_cls, data_dir, source, **builder_kwargs)``:

1. ``data_dir`` must be a directory or not exist yet; a prepared dataset's
   dataset_info must be readable; a version folder without
   dataset_info.json is a partial dataset and is refused rather than
   guessed at.
2. Not prepared yet: the source is checked, ``data_dir`` must be writable,
   then tfds prepares. Any failure while preparing removes what this
   preparation created, so a rerun after fixing the cause starts afresh.
3. Always: the source finds it not stale, and (``verify``) every split is
   present and non-empty, its files hold as many records as its
   dataset_info says and its first and last records read back.

Every failure is a DataError naming the data directory, what was wrong and
what to do (``data_dir_error``).

An item of the user's files that cannot be read (a JPEG that does not
decode, a malformed JSON, an undecodable wav) is skipped and counted per
split by ``BadItems`` while records are generated, up to
``data.max_bad_fraction`` of the split; past it preparation stops with a
DataError naming the files in data.manual_dir (and, as any failure while
preparing, leaves nothing behind).
"""
import dataclasses
import functools
import hashlib
import inspect
import os
import pathlib
import shutil
import tempfile
from typing import Any, Callable, Sequence
import zipfile
import zlib

from absl import logging
from array_record.python import array_record_module
from etils import epath
import tensorflow_datasets as tfds

from ume_jax.data.errors import DataError

SPLITS = ("train", "validation", "test")
DEFAULT_DATA_DIR = "~/.cache/ume_jax/tensorflow_datasets"
# The assets shipped with the package (setup.py's package_data).
ASSETS_DIR = pathlib.Path(__file__).parent / "assets"
# What reading a truncated or corrupt .npz raises.
NPZ_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile,
                   zlib.error)
# How messages name a source.
PACKAGED = "the packaged asset"
MANUAL_DIR = "data.manual_dir"
# The default of data.max_bad_fraction: see BadItems.
DEFAULT_MAX_BAD_FRACTION = 0.01
MAX_BAD_KEY = "data.max_bad_fraction"


class CodePath:
  """A builder's class-level ``code_path``: the file defining its class.

  tfds' default needs ``importlib_resources``.
  """

  def __get__(self, obj, objtype=None):
    return epath.Path(inspect.getfile(objtype or type(obj)))


class ArrayRecordBuilder(tfds.core.GeneratorBasedBuilder,
                         skip_registration=True):
  """Base of every dataset's builder: ArrayRecord files, which are read back
  without TensorFlow."""

  code_path = CodePath()

  def __init__(self, **kwargs):
    kwargs.setdefault("file_format", "array_record")
    super().__init__(**kwargs)


class AssetBuilder(ArrayRecordBuilder, skip_registration=True):
  """Base of the builders prepared from an asset file (``packaged_source``).

  ``asset_path`` defaults to the class's PACKAGED_ASSET; ``_record_asset``
  records the file's sha256 as ``metadata["asset_sha256"]``, which
  ``packaged_source`` compares, and the asset's own meta.
  """

  PACKAGED_ASSET: pathlib.Path

  def __init__(self, *, asset_path=None, **kwargs):
    self._asset_path = pathlib.Path(asset_path or self.PACKAGED_ASSET)
    super().__init__(**kwargs)

  def _record_asset(self, meta: dict) -> None:
    self.info.metadata["asset_sha256"] = sha256(self._asset_path)
    self.info.metadata["asset_meta"] = meta


@dataclasses.dataclass(frozen=True)
class Source:
  """What a dataset is prepared from.

  Attributes:
    origin: how messages name it: ``PACKAGED`` or ``MANUAL_DIR``.
    check: reads enough of the source to know it can be prepared from, and
      raises DataError (naming the file and what was expected) otherwise.
      Called before tfds runs, so a bad source fails before anything is
      written.
    stale_reason: given the prepared builder, why it was not made from this
      source with these options, completing "the dataset ... was prepared
      ...", e.g. "from a different version of 'x.npz' (sha256 differs)";
      None when it was.
  """

  origin: str
  check: Callable[[], Any]
  stale_reason: Callable[[Any], str | None] = lambda builder: None


def sha256(path) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()


def packaged_source(asset_path: pathlib.Path,
                    check_asset: Callable[[pathlib.Path], Any]) -> Source:
  """The Source of a dataset made from an asset file.

  ``check_asset(asset_path)`` validates the file; the builder (an
  ``AssetBuilder``) records its sha256, so a dataset prepared from another
  version of the asset is refused as stale rather than silently reused.
  """
  asset_path = pathlib.Path(asset_path)

  def stale_reason(builder):
    recorded = (builder.info.metadata or {}).get("asset_sha256")
    if (recorded and asset_path.is_file()
        and recorded != sha256(asset_path)):
      return (f"from a different version of {os.fspath(asset_path)!r}"
              " (sha256 differs)")
    return None
  return Source(PACKAGED, lambda: check_asset(asset_path), stale_reason)


def manual_dir_source(manual_dir, check: Callable[[Any], Any],
                      fingerprint: Callable[[pathlib.Path], Any], *,
                      key: str = "fingerprint", files: str = "files",
                      compared: str = "", options: dict | None = None
                      ) -> Source:
  """The Source of a dataset made from the user's files in data.manual_dir.

  Args:
    manual_dir: data.manual_dir (None or "" when not set).
    check: ``check(manual_dir)`` raises DataError naming what is missing or
      wrong and listing the layout expected.
    fingerprint: ``fingerprint(path)``: what a prepared dataset was made
      from (cheap: names, sizes, hashes of list files), as its builder
      records it in ``metadata[key]``.
    key: that metadata key.
    files: what differs, for the message ("files", "split/annotation
      files").
    compared: what the fingerprint compares, for the message.
    options: {data.* key: value} of the options that change the prepared
      records, recorded under the same keys in the metadata.

  A prepared dataset does not need manual_dir: it is compared with the
  fingerprint only when manual_dir is there.
  """

  def stale_reason(builder):
    meta = builder.info.metadata or {}
    for k, value in (options or {}).items():
      if k in meta and meta[k] != value:
        return f"with data.{k} = {meta[k]}, not {value}"
    d = _existing_dir(manual_dir)
    if d is not None and meta.get(key) and meta[key] != fingerprint(d):
      differ = f" ({compared} differ)" if compared else ""
      return (f"from other {files} than those in {os.fspath(d)!r}"
              f"{differ}")
    return None
  return Source(MANUAL_DIR, lambda: check(manual_dir), stale_reason)


def max_bad_fraction(value) -> float:
  """data.max_bad_fraction (None: the default) as a float in [0, 1), else
  DataError."""
  if value is None:
    return DEFAULT_MAX_BAD_FRACTION
  try:
    f = float(value)
  except (TypeError, ValueError):
    f = -1.0
  if not 0.0 <= f < 1.0:
    raise DataError(f"{MAX_BAD_KEY} = {value!r}; expected a fraction in"
                    " [0, 1) of a split's items: how many unreadable files"
                    " in data.manual_dir are skipped before preparation"
                    f" stops (default {DEFAULT_MAX_BAD_FRACTION}).")
  return f


class BadItem(Exception):
  """An item of the user's files that cannot be read: ``path`` (the file
  at fault) and ``reason`` (what reading it raised)."""

  def __init__(self, path, reason: str):
    super().__init__(f"{os.fspath(path)}: {reason}")
    self.path = pathlib.Path(path)
    self.reason = reason


class BadItems:
  """The unreadable items of data.manual_dir, skipped and counted per split.

  A builder makes one in ``_split_generators`` (``expect(split, n)`` for
  each split's n items) and calls ``skip(split, BadItem)`` for each item it
  cannot read, ``done(split)`` after its last. Recorded in the dataset's
  metadata as ``bad_items``: {split: {"count", "of", "files"}} (files
  relative to data.manual_dir, the first ``RECORDED``), and
  ``max_bad_fraction``; a split with any is logged as a warning naming the
  first few.

  More than ``max_fraction`` of a split's items bad is a DataError naming
  the files in data.manual_dir and ``data.max_bad_fraction``. The default,
  0.01, lets the odd damaged file of a real copy through (MM-IMDB's 25,959
  movies, Food-101's ~100k photos: a few hundred at most), where dropping
  them moves scores far less than run-to-run noise, while a copy with more
  than 1% unreadable (an interrupted download or extraction, the wrong
  folder) stops preparation instead of silently training and evaluating on
  another dataset than the one reported. 0 refuses any bad item. Missing
  clips of the clip datasets are a separate, expected loss (videos gone
  from YouTube) with their own ``data.max_missing_fraction`` (0.05); a clip
  whose files are there but do not decode counts here.
  """

  LISTED = 5     # files named in warnings and errors
  RECORDED = 100  # files named in the metadata, per split

  def __init__(self, name: str, manual_dir, max_fraction: float,
               metadata: dict):
    self._name = name
    self._dir = pathlib.Path(manual_dir)
    self._max = max_bad_fraction(max_fraction)
    self._totals: dict[str, int] = {}
    self._files: dict[str, list[str]] = {}
    self._reasons: dict[str, str] = {}
    self._meta = metadata
    metadata["max_bad_fraction"] = self._max
    metadata["bad_items"] = {}

  def expect(self, split: str, total: int) -> None:
    self._totals[split] = int(total)
    self._files[split] = []
    self._record(split)

  def _record(self, split: str) -> None:
    files = self._files[split]
    self._meta["bad_items"][split] = {
        "count": len(files), "of": self._totals[split],
        "files": files[:self.RECORDED]}

  def _name_of(self, path: pathlib.Path) -> str:
    try:
      return os.fspath(path.relative_to(self._dir))
    except ValueError:
      return os.fspath(path)

  def skip(self, split: str, item: BadItem) -> None:
    files = self._files[split]
    files.append(self._name_of(item.path))
    self._reasons.setdefault(split, item.reason)
    self._record(split)
    total = self._totals[split]
    if len(files) > self._max * total:
      first = [os.fspath(self._dir / f) for f in files[:self.LISTED]]
      raise DataError(
          f"{self._name}: {len(files)} of the {total} items of the {split!r}"
          f" split in data.manual_dir {os.fspath(self._dir)!r} cannot be"
          f" read (first: {first}; {self._reasons[split]}), more than"
          f" {MAX_BAD_KEY} = {self._max} of the split, so preparation"
          " stopped and nothing was kept in data.data_dir. Copy those files"
          " again from the original archive (or extract them again), or"
          f" raise {MAX_BAD_KEY} (e.g. --config.{MAX_BAD_KEY}=0.05) to skip"
          " them.")

  def done(self, split: str) -> None:
    files = self._files[split]
    if files:
      logging.warning(
          "%s: skipped %d of the %d items of the %r split that cannot be"
          " read in data.manual_dir %r (first: %s; %s); their names are in"
          " the dataset's metadata (bad_items).", self._name, len(files),
          self._totals[split], split, os.fspath(self._dir),
          files[:self.LISTED], self._reasons[split])


def manual_dir_path(name: str, manual_dir, copy_of: str,
                    layout: Callable[[str], str]) -> pathlib.Path:
  """data.manual_dir as a Path, if it is set and a directory.

  Otherwise a DataError saying that ``name`` is prepared from ``copy_of``
  (e.g. "your own copy of MM-IMDB") and, through ``layout(where)``, what
  the folder must hold.
  """
  if not manual_dir:
    raise DataError(
        f"{name} is prepared from {copy_of}; set data.manual_dir"
        " (--config.data.manual_dir=PATH). "
        + layout("<data.manual_dir not set>"))
  d = pathlib.Path(os.path.expanduser(os.fspath(manual_dir)))
  if not d.is_dir():
    raise DataError(f"{name} data.manual_dir {os.fspath(d)!r} is not a"
                    " directory. " + layout(os.fspath(d)))
  return d


def _existing_dir(path) -> pathlib.Path | None:
  """``path`` expanded, or None when it is not set or not a directory."""
  if not path:
    return None
  path = pathlib.Path(os.path.expanduser(os.fspath(path)))
  return path if path.is_dir() else None


def data_dir_error(name: str, data_dir, what: str, *, origin: str,
                   folder: str) -> DataError:
  """The one message of everything wrong with a data directory."""
  return DataError(
      f"{name} data directory {os.fspath(data_dir)!r}: {what}. The input"
      f" pipeline prepares {name} there (as ArrayRecord files under"
      f" {folder}) from {origin} on first use; point data.data_dir at a"
      " writable directory, or delete the broken dataset folder so it is"
      " prepared again.")


def prepared(builder_cls, data_dir, source: Source, *,
             splits: Sequence[str] = SPLITS, **builder_kwargs):
  """A ``builder_cls`` whose dataset is prepared in ``data_dir``, checked.

  Prepares it from ``source`` if needed (see the module docstring).
  ``data_dir`` None or "" means ``DEFAULT_DATA_DIR``; ``builder_kwargs`` go
  to the builder. Raises DataError for a bad source, an unusable data_dir
  or a broken, partial or stale prepared dataset.
  """
  name = builder_cls.name
  data_dir = pathlib.Path(os.path.expanduser(
      os.fspath(data_dir or DEFAULT_DATA_DIR)))
  error = functools.partial(data_dir_error, name, data_dir,
                            origin=source.origin, folder=f"{name}/")
  if data_dir.exists() and not data_dir.is_dir():
    raise error("exists but is not a directory")
  try:
    builder = builder_cls(data_dir=os.fspath(data_dir), **builder_kwargs)
  except Exception as e:  # tfds raises assorted errors on a corrupt info file.
    raise error(f"holds an unreadable {name}/{builder_cls.VERSION} dataset"
                f" ({type(e).__name__}: {e})") from e
  folder = os.path.relpath(builder.data_dir, data_dir) + os.sep
  error = functools.partial(error, folder=folder)
  if not builder.is_prepared():
    if os.path.exists(builder.data_dir):
      raise error(f"{builder.data_dir!r} holds a partial dataset (no"
                  " dataset_info.json, so preparation never finished)")
    source.check()
    _check_writable(data_dir, error)
    _download_and_prepare(builder, data_dir, source.origin, error)
  # Stale first: a dataset prepared with other options (another image size)
  # would otherwise fail below as unreadable, which says less.
  reason = source.stale_reason(builder)
  if reason:
    raise error(f"the dataset in {builder.data_dir!r} was prepared {reason},"
                " so it is stale")
  verify(builder, splits, error)
  return builder


def _check_writable(data_dir: pathlib.Path, error) -> None:
  try:
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=data_dir, prefix=".write_test"):
      pass
  except OSError as e:
    raise error(f"not a writable directory ({e})") from e


def _download_and_prepare(builder, data_dir: pathlib.Path, origin: str,
                          error) -> None:
  # tfds writes into a temporary folder and renames it when done, but it
  # leaves the folders above it (and downloads/) behind on a failure; all of
  # them are removed here, so nothing half-made stays in data_dir.
  created = [p for p in (_outermost_new(data_dir, builder.data_dir),
                         _outermost_new(data_dir, data_dir / "downloads"))
             if p is not None]
  try:
    tfds.disable_progress_bar()  # seconds to minutes; keep logs readable
    builder.download_and_prepare(
        download_dir=os.fspath(data_dir / "downloads"))
  except BaseException as e:  # KeyboardInterrupt and SIGTERM too
    for path in created:
      shutil.rmtree(path, ignore_errors=True)
    if isinstance(e, OSError):
      raise error(f"preparing it from {origin} failed ({type(e).__name__}:"
                  f" {e}); what it had written was removed, so fix the cause"
                  " and run again") from e
    raise


def _outermost_new(root: pathlib.Path, path) -> pathlib.Path | None:
  """The outermost folder from ``root`` down to ``path`` not there yet."""
  current = root
  for part in pathlib.Path(os.path.relpath(path, root)).parts:
    current = current / part
    if not current.exists():
      return current
  return None


def verify(builder, splits: Sequence[str],
           error: Callable[[str], DataError]) -> None:
  """Every split is present, holds the records its dataset_info counts and
  reads back (first and last record), so a damaged prepared dataset fails
  at load rather than mid-training."""
  where = builder.data_dir
  for split in splits:
    info = builder.info.splits.get(split)
    if info is None or info.num_examples <= 0:
      raise error(f"the prepared dataset in {where!r} has no {split!r} split")
    unreadable = lambda e, split=split: error(
        f"split {split!r} of the prepared dataset in {where!r} cannot be"
        f" read ({type(e).__name__}: {e})")
    try:
      counts = [_num_records(path) for path in info.filepaths]
    except Exception as e:  # array_record raises RuntimeError/OSError/...
      raise unreadable(e) from e
    if counts != list(info.shard_lengths):
      per_file = (f" (per file: {counts}, dataset_info:"
                  f" {list(info.shard_lengths)})" if len(counts) > 1 else "")
      raise error(f"split {split!r} in {where!r} has {sum(counts)} records,"
                  f" its dataset_info says {info.num_examples}{per_file}")
    try:
      records = builder.as_data_source(split)
      records[0], records[len(records) - 1]  # pylint: disable=pointless-statement
    except Exception as e:  # array_record raises RuntimeError/ValueError/...
      raise unreadable(e) from e


def _num_records(path) -> int:
  reader = array_record_module.ArrayRecordReader(os.fspath(path))
  try:
    return reader.num_records()
  finally:
    reader.close()
