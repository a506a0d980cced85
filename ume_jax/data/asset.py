"""Loading and validating the embedded avdigits asset (`assets/avdigits.npz`).

Format: for each split in `SPLITS`, `image_{split}` uint8 (N, 28, 28),
`audio_{split}` uint8 (N, 40, 40) (log-mel, time x mel, quantised dB),
`label_{split}` uint8 (N,) in 0..9 and `voice_{split}` int16 (N,); plus `meta`,
a 0-d unicode array holding a JSON object (name, version, seed, sources,
front_end, splits with num_examples, voices, ...).
"""

import json
import os
import pathlib
import zipfile
import zlib

import numpy as np

from ume_jax.data.errors import DataError

SPLITS = ("train", "validation", "test")
NUM_CLASSES = 10
# field -> (per-example shape, dtype)
FIELDS = {
    "image": ((28, 28), np.dtype(np.uint8)),
    "audio": ((40, 40), np.dtype(np.uint8)),
    "label": ((), np.dtype(np.uint8)),
    "voice": ((), np.dtype(np.int16)),
}
PACKAGED_ASSET = pathlib.Path(__file__).parent / "assets" / "avdigits.npz"
_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)


def _fail(path, what: str) -> DataError:
  return DataError(
      f"avdigits asset {os.fspath(path)!r}: {what}. Expected an .npz with, for"
      f" each split in {list(SPLITS)}, keys image_<split> uint8 (N,28,28),"
      " audio_<split> uint8 (N,40,40), label_<split> uint8 (N,) in 0..9,"
      " voice_<split> int16 (N,), and a 0-d unicode JSON 'meta'; regenerate"
      " or restore the file (or point data.asset_path at a good copy)."
  )


def load_asset(path, expected_version: str | None = None):
  """Reads and validates the asset.

  Args:
    path: the .npz file.
    expected_version: if given, `meta["version"]` must equal it.

  Returns:
    (arrays, meta): arrays[split][field] is a numpy array, meta the parsed JSON.

  Raises:
    DataError: naming the file, the key and what was expected.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise _fail(path, "the file does not exist")
  try:
    npz = np.load(path, allow_pickle=False)
  except _READ_ERRORS as e:
    raise _fail(path, f"cannot be opened as an .npz ({type(e).__name__}: {e});"
                " it is probably truncated or corrupt") from e
  with npz:
    keys = set(npz.files)

    def read(key):
      if key not in keys:
        raise _fail(path, f"key {key!r} is missing (keys present: "
                    f"{sorted(keys)})")
      try:
        return npz[key]
      except _READ_ERRORS as e:
        raise _fail(path, f"key {key!r} cannot be read ({type(e).__name__}: "
                    f"{e}); the file is probably truncated or corrupt") from e

    meta_arr = read("meta")
    arrays = {}
    for split in SPLITS:
      arrays[split] = {}
      n = None
      for field, (shape, dtype) in FIELDS.items():
        key = f"{field}_{split}"
        a = read(key)
        want = ("N",) + shape
        if a.dtype != dtype or a.ndim != len(want) or a.shape[1:] != shape:
          raise _fail(path, f"key {key!r} has dtype {a.dtype} and shape "
                      f"{a.shape}, expected dtype {dtype} and shape {want}")
        if n is None:
          n = a.shape[0]
        if a.shape[0] != n or n == 0:
          raise _fail(path, f"key {key!r} has {a.shape[0]} examples but "
                      f"image_{split} has {n} (expected the same, non-zero, "
                      "count for every key of a split)")
        arrays[split][field] = a
      if arrays[split]["label"].max() >= NUM_CLASSES:
        raise _fail(path, f"key 'label_{split}' has value "
                    f"{int(arrays[split]['label'].max())}, expected labels in "
                    f"0..{NUM_CLASSES - 1}")

  if meta_arr.ndim != 0 or meta_arr.dtype.kind != "U":
    raise _fail(path, f"key 'meta' has dtype {meta_arr.dtype} and shape "
                f"{meta_arr.shape}, expected a 0-d unicode array holding JSON")
  try:
    meta = json.loads(str(meta_arr))
  except ValueError as e:
    raise _fail(path, f"key 'meta' is not valid JSON ({e})") from e
  if not isinstance(meta, dict):
    raise _fail(path, "key 'meta' holds JSON that is not an object")
  if expected_version is not None and meta.get("version") != expected_version:
    raise _fail(path, f"key 'meta' has version {meta.get('version')!r}, "
                f"expected {expected_version!r}")
  for split, info in (meta.get("splits") or {}).items():
    want = info.get("num_examples") if isinstance(info, dict) else None
    if split in arrays and want is not None:
      got = arrays[split]["label"].shape[0]
      if int(want) != got:
        raise _fail(path, f"key 'meta' says split {split!r} has {want} "
                    f"examples but label_{split} has {got}")
  return arrays, meta
