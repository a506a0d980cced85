"""PyTorch checkpoints (``.pth`` / ``.pt``) read with numpy, running no code.

A PyTorch checkpoint is a pickle, and unpickling runs whatever callables
the pickle names (``os.system`` as easily as ``OrderedDict``): ``pickle``
or ``torch.load`` without ``weights_only`` on a stranger's file executes
its code. This reader unpickles with an allow-list: the only globals it
resolves are the ones a state dict needs (``collections.OrderedDict``,
``torch._utils._rebuild_tensor_v2`` / ``_rebuild_tensor`` /
``_rebuild_parameter`` and the typed storages ``torch.FloatStorage``,
``LongStorage``...), each mapped to our own harmless stand-in; any other
global stops the read with a ``WeightsError`` naming it, before anything
is called. Storages are read as raw bytes by numpy. No torch is imported.

Both of torch's on-disk formats are read:

* legacy (``torch.save(..., _use_new_zipfile_serialization=False)``, and
  everything before torch 1.6): five things in a row - a pickled magic
  number, the pickled protocol version (1001), a pickled dict of the
  writer's byte order and type sizes, the object's pickle (tensors refer to
  storages by key, through pickle's persistent ids), the pickled list of
  storage keys, and then each storage's raw bytes prefixed by its element
  count (8 bytes);
* zip (torch >= 1.6): ``<prefix>/data.pkl`` holds the object's pickle and
  ``<prefix>/data/<key>`` each storage's raw bytes, ``<prefix>/byteorder``
  the writer's byte order.

Tensors become numpy arrays of their storage's dtype (bfloat16, which
numpy lacks, as float32 - exactly), honouring the tensor's offset and
strides (a view of a larger storage, a transposed tensor).
"""
import _compat_pickle
import collections
import dataclasses
import io
import os
import pickle
import struct
import zipfile
from typing import Any

import numpy as np

from ume_jax.weights.errors import WeightsError

LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
LEGACY_PROTOCOL = 1001
_MAX_DIMS = 32

# Storage class name -> numpy dtype of its elements (little-endian).
_STORAGE_DTYPES = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2",
    "BFloat16Storage": "<u2", "LongStorage": "<i8", "IntStorage": "<i4",
    "ShortStorage": "<i2", "CharStorage": "i1", "ByteStorage": "u1",
    "BoolStorage": "?",
}
_ALLOWED_TEXT = ("collections.OrderedDict, torch._utils._rebuild_tensor_v2"
                 " / _rebuild_tensor / _rebuild_parameter and the typed"
                 " storages torch.{" + ", ".join(
                     n for n in _STORAGE_DTYPES) + "}")
_EXPECTED = ("Expected a state dict (tensors in dicts, lists and tuples of"
             " plain values) saved by torch.save, in torch's zip or legacy"
             " format; a file holding a whole model or other Python objects"
             " can be re-saved as one where torch is installed and the file"
             " is trusted: torch.save(model.state_dict(), path).")


def _error(path: str, what: str) -> WeightsError:
  return WeightsError(f"{path}: {what} {_EXPECTED}")


@dataclasses.dataclass(frozen=True, slots=True)
class _StorageType:
  """What ``torch.FloatStorage`` & co. resolve to: a name and a dtype.
  Deliberately not callable: a pickle cannot construct anything with it."""
  name: str
  dtype: str


@dataclasses.dataclass(slots=True, eq=False)
class _Storage:
  """A storage a tensor refers to; ``data`` (1-D) is filled in once its
  bytes are read (after the pickle, in the legacy format)."""
  key: str
  kind: _StorageType
  numel: int
  data: np.ndarray | None = None
  view_of: "_Storage | None" = None   # legacy storage views
  view_offset: int = 0


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class _LazyTensor:
  storage: _Storage
  offset: int
  size: tuple
  stride: tuple


def _ints(value, what: str) -> tuple:
  if not isinstance(value, (tuple, list)) or len(value) > _MAX_DIMS or not all(
      isinstance(v, int) and not isinstance(v, bool) and v >= 0
      for v in value):
    raise ValueError(f"tensor {what} {value!r} is not a tuple of"
                     " non-negative ints")
  return tuple(value)


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
  """Stands in for torch._utils._rebuild_tensor(_v2): records the view."""
  if not isinstance(storage, _Storage):
    raise ValueError(f"a tensor's storage is {type(storage).__name__}, not"
                     " a storage")
  size, stride = _ints(size, "size"), _ints(stride, "stride")
  if len(size) != len(stride):
    raise ValueError(f"tensor size {size} and stride {stride} differ in"
                     " length")
  offset = _ints((storage_offset,), "offset")[0]
  return _LazyTensor(storage, offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
  """Stands in for torch._utils._rebuild_parameter: the tensor itself."""
  del requires_grad, backward_hooks
  if not isinstance(data, _LazyTensor):
    raise ValueError(f"a parameter holds {type(data).__name__}, not a"
                     " tensor")
  return data


_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name, dtype)
       for name, dtype in _STORAGE_DTYPES.items()},
}


class _Refused(Exception):
  """Raised from inside the unpickler; becomes one WeightsError."""


class _Unpickler(pickle.Unpickler):
  """Resolves only ``_GLOBALS``; storages by persistent id into
  ``storages`` (key -> _Storage), their bytes read later."""

  def __init__(self, file, storages: dict | None):
    super().__init__(file)
    self._storages = storages

  def find_class(self, module: str, name: str):
    # Protocol-2 pickles name Python 3 modules by their Python 2 names
    # (__builtin__.eval): report and look up what pickle itself would.
    module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    found = _GLOBALS.get((module, name))
    if found is None:
      raise _Refused(
          f"its pickle asks for the global {module}.{name}, which is not on"
          " the reader's allow-list, so the file was not loaded and nothing"
          f" it names was called (allowed: {_ALLOWED_TEXT}).")
    return found

  def persistent_load(self, pid):
    if self._storages is None:
      raise _Refused("a pickle that should hold a plain value refers to a"
                     " storage.")
    if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
      kind = pid[0] if isinstance(pid, tuple) and pid else pid
      raise _Refused(f"its pickle refers to a persistent object {kind!r}"
                     " (only 'storage' is read; 'module' would be a saved"
                     " model's source code).")
    return self._storage(pid)

  def _storage(self, pid: tuple) -> _Storage:
    # zip: (storage, type, key, location, numel); legacy adds view_metadata.
    if len(pid) not in (5, 6) or not isinstance(pid[1], _StorageType):
      raise _Refused(f"a storage reference {pid!r} is malformed.")
    kind, key, numel = pid[1], pid[2], pid[4]
    if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
      raise _Refused(f"a storage reference {pid!r} is malformed.")
    root = self._storages.setdefault(key, _Storage(key, kind, numel))
    if root.kind != kind:
      raise _Refused(f"storage {key!r} is referred to as both {root.kind.name}"
                     f" and {kind.name}.")
    view = pid[5] if len(pid) == 6 else None
    if view is None:
      return root
    # Pre-1.0 torch: (view_key, offset, view_size) into the root storage.
    view_key, offset, view_size = view
    if not (isinstance(offset, int) and isinstance(view_size, int)
            and 0 <= offset and offset + view_size <= numel):
      raise _Refused(f"storage view {view!r} does not fit storage {key!r}.")
    return _Storage(view_key, kind, view_size, view_of=root,
                    view_offset=offset)


def _unpickle(path: str, file, storages: dict | None, what: str):
  try:
    return _Unpickler(file, storages).load()
  except _Refused as e:
    raise _error(path, str(e)) from None
  except (pickle.UnpicklingError, EOFError, ValueError, TypeError,
          AttributeError, IndexError, KeyError, struct.error,
          MemoryError) as e:
    raise _error(path, f"{what} cannot be unpickled ({type(e).__name__}:"
                 f" {e}); the file is truncated, corrupt or not a PyTorch"
                 " checkpoint.") from None


def _bytes_to_array(raw: bytes, kind: _StorageType, big_endian: bool
                    ) -> np.ndarray:
  dtype = np.dtype(kind.dtype)
  if big_endian:
    dtype = dtype.newbyteorder(">")
  return np.frombuffer(raw, dtype=dtype)


def _fill(path: str, storage: _Storage, raw: bytes, big_endian: bool):
  itemsize = np.dtype(storage.kind.dtype).itemsize
  if len(raw) != storage.numel * itemsize:
    raise _error(path, f"storage {storage.key!r} holds {len(raw)} bytes;"
                 f" its tensors need {storage.numel} elements of"
                 f" {itemsize} bytes ({storage.kind.name}). The file is"
                 " truncated or corrupt.")
  storage.data = _bytes_to_array(raw, storage.kind, big_endian)


def _flat(storage: _Storage) -> np.ndarray | None:
  if storage.view_of is not None:
    root = _flat(storage.view_of)
    return (None if root is None else
            root[storage.view_offset:storage.view_offset + storage.numel])
  return storage.data


def _materialise(path: str, t: _LazyTensor) -> np.ndarray:
  flat = _flat(t.storage)
  if flat is None:
    raise _error(path, f"storage {t.storage.key!r} is used by a tensor but"
                 " its bytes are not in the file.")
  dtype = flat.dtype.newbyteorder("=")
  if 0 in t.size:
    out = np.zeros(t.size, dtype)
  else:
    last = t.offset + sum((n - 1) * s for n, s in zip(t.size, t.stride))
    if last >= flat.size:
      raise _error(path, f"a tensor of size {t.size}, stride {t.stride} at"
                   f" offset {t.offset} reaches element {last} of storage"
                   f" {t.storage.key!r}, which has {flat.size}.")
    view = np.lib.stride_tricks.as_strided(
        flat[t.offset:], shape=t.size,
        strides=tuple(s * flat.itemsize for s in t.stride), writeable=False)
    try:
      out = view.astype(dtype)   # a copy, in native byte order
    except MemoryError:   # stride 0 can make a small storage a huge tensor
      raise _error(path, f"a tensor of size {t.size} (stride {t.stride}) is"
                   " too large for memory.") from None
  if t.storage.kind.name == "BFloat16Storage":
    # bfloat16 is float32's upper half: shifting the bits back is exact.
    return (out.astype(np.uint32) << 16).view(np.float32)
  return out


def _resolve(path: str, obj):
  """``obj`` with every tensor stand-in replaced by its numpy array."""
  if isinstance(obj, _LazyTensor):
    return _materialise(path, obj)
  if isinstance(obj, dict):
    out = type(obj)() if type(obj) in (dict, collections.OrderedDict) else {}
    out.update((k, _resolve(path, v)) for k, v in obj.items())
    return out
  if isinstance(obj, (list, tuple)):
    return type(obj)(_resolve(path, v) for v in obj)
  return obj


def _read_legacy(path: str, f) -> Any:
  magic = _unpickle(path, f, None, "the magic number")
  if magic != LEGACY_MAGIC:
    raise _error(path, "is neither a zip archive nor starts with torch's"
                 " legacy magic number: not a PyTorch checkpoint.")
  protocol = _unpickle(path, f, None, "the protocol version")
  if protocol != LEGACY_PROTOCOL:
    raise _error(path, f"has legacy protocol version {protocol!r}; only"
                 f" {LEGACY_PROTOCOL} is read.")
  info = _unpickle(path, f, None, "the system info")
  big_endian = not (isinstance(info, dict) and info.get("little_endian",
                                                        True))
  storages: dict[str, _Storage] = {}
  obj = _unpickle(path, f, storages, "the saved object")
  keys = _unpickle(path, f, None, "the storage key list")
  if not isinstance(keys, list) or set(keys) != set(storages):
    raise _error(path, f"lists storages {keys!r} after the pickle, which"
                 f" refers to {sorted(storages)}.")
  remaining = os.fstat(f.fileno()).st_size - f.tell()
  for key in keys:
    storage = storages[key]
    head = f.read(8)
    count = (struct.unpack(">q" if big_endian else "<q", head)[0]
             if len(head) == 8 else -1)
    nbytes = count * np.dtype(storage.kind.dtype).itemsize
    remaining -= 8
    if count != storage.numel or nbytes > remaining:
      raise _error(path, f"storage {key!r} should hold {storage.numel}"
                   f" elements; the file gives {count}"
                   f" ({max(remaining, 0)} bytes left). The file is"
                   " truncated or corrupt.")
    _fill(path, storage, f.read(nbytes), big_endian)
    remaining -= nbytes
  return _resolve(path, obj)


def _zip_prefix(path: str, names: list[str]) -> str:
  pickles = [n for n in names
             if n.count("/") <= 1 and n.rsplit("/", 1)[-1] == "data.pkl"]
  if len(pickles) != 1:
    raise _error(path, f"is a zip archive with {len(pickles)} top-level"
                 " data.pkl files (torch's zip format has one,"
                 " <prefix>/data.pkl).")
  return pickles[0][:-len("data.pkl")]


def _read_zip(path: str, z: zipfile.ZipFile) -> Any:
  names = z.namelist()
  prefix = _zip_prefix(path, names)
  order = prefix + "byteorder"
  big_endian = (order in names
                and z.read(order).decode("ascii", "replace").strip() == "big")
  storages: dict[str, _Storage] = {}
  obj = _unpickle(path, io.BytesIO(z.read(prefix + "data.pkl")), storages,
                  f"{prefix}data.pkl")
  for key, storage in storages.items():
    member = f"{prefix}data/{key}"
    try:
      info = z.getinfo(member)
    except KeyError:
      raise _error(path, f"lacks {member}, the bytes of storage {key!r}."
                   ) from None
    want = storage.numel * np.dtype(storage.kind.dtype).itemsize
    if info.file_size != want:   # checked before reading (no zip bombs)
      raise _error(path, f"{member} holds {info.file_size} bytes; storage"
                   f" {key!r} needs {want}.")
    _fill(path, storage, z.read(member), big_endian)
  return _resolve(path, obj)


def load(path: str) -> Any:
  """The object a PyTorch checkpoint holds, tensors as numpy arrays.

  Raises:
    WeightsError: one paragraph naming the file and what was expected: a
      global outside the allow-list (nothing was called), a truncated or
      corrupt file, or not a PyTorch checkpoint.
  """
  path = os.fspath(path)
  try:
    if zipfile.is_zipfile(path):
      with zipfile.ZipFile(path) as z:
        return _read_zip(path, z)
    with open(path, "rb") as f:
      return _read_legacy(path, f)
  except (OSError, zipfile.BadZipFile) as e:
    raise _error(path, f"cannot be read ({type(e).__name__}: {e}).") from None


def state_dict(path: str) -> dict[str, np.ndarray]:
  """A checkpoint holding a state dict: its tensors by name."""
  obj = load(path)
  if not isinstance(obj, dict) or not all(
      isinstance(k, str) and isinstance(v, np.ndarray)
      for k, v in obj.items()):
    raise _error(path, f"holds a {type(obj).__name__}, not a flat mapping"
                 " of names to tensors.")
  return dict(obj)
