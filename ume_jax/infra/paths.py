"""Where workdir files are read and written: every file the project keeps
in a workdir (checkpoints, metrics, events, results, plots, the lock) goes
through here, on ``etils.epath`` - the path abstraction Orbax itself uses -
so a workdir can be a local folder or ``gs://bucket/...``.

Object storage differs from a disk in ways the callers rely on, so they
are handled here once:

- *atomic writes*: on a disk, a temporary file renamed over the target (a
  crash leaves the old file or the new, never half of one); an object
  store writes an object whole at close, so it is written directly.
- *no appending*: an object is rewritten whole (``Appender``).
- *exclusive creation* (the workdir lock): ``O_EXCL`` on a disk; on
  ``gs://`` a TensorStore write conditional on the object not existing
  (GCS's ``ifGenerationMatch=0``) - TensorStore's ``gcs`` driver is the one
  Orbax writes arrays with, so no other client library is needed.
- folders exist on object storage only as prefixes of objects: creating
  one does nothing there.

``epath`` reaches ``gs://`` through TensorFlow's ``tf.io.gfile`` when
TensorFlow is installed, else through fsspec's ``gcsfs``, and Orbax asks
``google-cloud-storage`` about the bucket: the ``gcs`` extra of setup.py
(``experiment`` checks them before any work starts).
"""
import importlib
import os

from etils import epath

REMOTE_SCHEMES = ("gs://",)


def is_remote(path) -> bool:
  return os.fspath(path).startswith(REMOTE_SCHEMES)


def require_clients(p) -> None:
  """Raises ImportError when ``p`` is on object storage and a library
  needed for it is missing (epath's own gs:// client is checked by using
  it; Orbax imports google-cloud-storage only once it lists steps)."""
  if is_remote(p):
    importlib.import_module("google.cloud.storage")


def path(p) -> epath.Path:
  """``p`` as an epath: local paths made absolute, URLs kept as they are."""
  p = os.fspath(p)
  return epath.Path(p if is_remote(p) else os.path.abspath(p))


def name(p) -> str:
  """The printable, absolute form of ``p`` (logs, records, messages)."""
  return os.fspath(path(p))


def join(p, *parts: str) -> str:
  return os.fspath(path(p).joinpath(*parts))


def makedirs(p) -> None:
  if not is_remote(p):
    os.makedirs(p, exist_ok=True)


def exists(p) -> bool:
  return path(p).exists()


def isdir(p) -> bool:
  return path(p).is_dir()


def isfile(p) -> bool:
  return path(p).is_file()


def listdir(p) -> list[str]:
  """Names in folder ``p``; [] when it does not exist."""
  q = path(p)
  return sorted(c.name for c in q.iterdir()) if q.is_dir() else []


def glob(p, pattern: str) -> list[str]:
  return sorted(os.fspath(c) for c in path(p).glob(pattern))


def read_text(p) -> str:
  return path(p).read_text()


def read_bytes(p) -> bytes:
  return path(p).read_bytes()


def write_bytes(p, data: bytes) -> None:
  """Writes ``p`` whole or not at all (see the module doc)."""
  q = path(p)
  if is_remote(p):
    q.write_bytes(data)
    return
  q.parent.mkdir(parents=True, exist_ok=True)
  tmp = q.parent / f".{q.name}.tmp.{os.getpid()}"
  tmp.write_bytes(data)
  os.replace(tmp, q)


def write_text(p, text: str) -> None:
  write_bytes(p, text.encode("utf-8"))


def remove(p) -> None:
  path(p).unlink()


def _files(q: epath.Path):
  """Every file under folder ``q`` (objects, on object storage)."""
  for child in q.iterdir():
    if child.is_dir():
      yield from _files(child)
    else:
      yield child


def rename(src, dst) -> None:
  """Moves folder ``src`` to ``dst``; on object storage, where there is no
  rename (nor folders to rename into), each object is copied, then the
  originals deleted."""
  if not is_remote(src):
    os.rename(src, dst)
    return
  top, target = path(src), path(dst)
  moved = list(_files(top))
  for f in moved:
    f.copy(target / os.path.relpath(os.fspath(f), os.fspath(top)))
  for f in moved:
    f.unlink()


class Appender:
  """Lines appended to one file: a real append on a disk; on object
  storage the object is rewritten whole at each ``flush`` (what it holds
  is small: one line per logged step)."""

  def __init__(self, p):
    self._path = p
    self._remote = is_remote(p)
    if self._remote:
      self._lines = (read_text(p).splitlines(keepends=True) if isfile(p)
                     else [])
    else:
      self._file = open(path(p), "a")

  def write(self, line: str) -> None:
    if self._remote:
      self._lines.append(line)
    else:
      self._file.write(line)

  def flush(self) -> None:
    if self._remote:
      write_text(self._path, "".join(self._lines))
    else:
      self._file.flush()

  def close(self) -> None:
    self.flush()
    if not self._remote:
      self._file.close()


# -- exclusive creation and conditional removal (the workdir lock) ----------

# TensorStore's StorageGeneration::NoValue(): "the key does not exist".
_NO_VALUE = b"\x02"


def _kvstore(p):
  """The TensorStore key-value store of bucket/prefix ``p``'s parent, and
  ``p``'s key in it."""
  import tensorstore as ts   # Orbax's own dependency
  bucket, _, key = os.fspath(p).removeprefix("gs://").partition("/")
  return ts.KvStore.open({"driver": "gcs", "bucket": bucket}).result(), key


def create_exclusive(p, text: str) -> bool:
  """Creates file ``p`` holding ``text``; False when ``p`` exists."""
  if not is_remote(p):
    try:
      fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      return False
    with os.fdopen(fd, "w") as f:
      f.write(text)
    return True
  kv, key = _kvstore(p)
  # A failed condition is no error: the result's generation is empty.
  return bool(kv.write(key, text.encode("utf-8"), if_equal=_NO_VALUE
                       ).result().generation)


def read_versioned(p) -> tuple[str, object] | None:
  """``p``'s text and a token of this version of it; None when absent."""
  if not is_remote(p):
    try:
      with open(p) as f:
        text, st = f.read(), os.fstat(f.fileno())   # the file that was read
    except FileNotFoundError:
      return None
    return text, (st.st_ino, st.st_mtime_ns, st.st_size)
  kv, key = _kvstore(p)
  r = kv.read(key).result()
  if r.state != "value":
    return None
  return bytes(r.value).decode("utf-8", "replace"), r.stamp.generation


def remove_if(p, token) -> bool:
  """Removes ``p`` if it is still the version ``token`` names (another
  process may have replaced it since it was read); True if removed."""
  if not is_remote(p):
    aside = f"{p}.removing.{os.getpid()}"
    try:
      os.rename(p, aside)
    except FileNotFoundError:
      return False
    st = os.stat(aside)
    if (st.st_ino, st.st_mtime_ns, st.st_size) != token:
      try:   # another run's newer file: put it back
        os.link(aside, p)
      except FileExistsError:
        pass
      os.unlink(aside)
      return False
    os.unlink(aside)
    return True
  kv, key = _kvstore(p)
  return bool(kv.write(key, None, if_equal=token).result().generation)
