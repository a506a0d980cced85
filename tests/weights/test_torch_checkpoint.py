"""The PyTorch checkpoint reader (weights/torch_checkpoint.py): both formats
read to the same numbers torch saved, and a pickle asking for anything
outside the allow-list is refused before anything it names runs.

``tests/fixtures/torch/{zip,legacy}.pt`` were written by torch 2.13
(scripts/make_efficientnet_fixture.py) with ``expected.npz`` beside them;
the crafted files are assembled here opcode by opcode, so no malicious
file is committed and no torch is needed.
"""
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest

from ume_jax.weights import torch_checkpoint
from ume_jax.weights.errors import WeightsError

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "torch")
FORMATS = ("zip", "legacy")


# --- a minimal pickle writer (protocol 2 opcodes) --------------------------

def _global(module: str, name: str) -> bytes:
  return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _str(s: str) -> bytes:
  raw = s.encode()
  return b"X" + struct.pack("<I", len(raw)) + raw


def _int(i: int) -> bytes:
  if -2 ** 31 <= i < 2 ** 31:
    return b"J" + struct.pack("<i", i)
  raw = i.to_bytes(9, "little", signed=True)   # LONG1
  return b"\x8a" + bytes([len(raw)]) + raw


def _tuple(*items: bytes) -> bytes:
  return b"(" + b"".join(items) + b"t"


def _call(func: bytes, *args: bytes) -> bytes:
  return func + _tuple(*args) + b"R"


def _dict(**items: bytes) -> bytes:
  return b"}(" + b"".join(_str(k) + v for k, v in items.items()) + b"u"


def _pickle(body: bytes) -> bytes:
  return b"\x80\x02" + body + b"."


def _tensor(fmt: str, key: str, storage: str, numel: int, offset: int,
            size: tuple, stride: tuple) -> bytes:
  """``torch._utils._rebuild_tensor_v2`` over a storage, as torch writes it."""
  pid = [_str("storage"), _global("torch", storage), _str(key), _str("cpu"),
         _int(numel)]
  if fmt == "legacy":
    pid.append(b"N")   # view_metadata
  return _call(_global("torch._utils", "_rebuild_tensor_v2"),
               _tuple(*pid) + b"Q", _int(offset),
               _tuple(*map(_int, size)), _tuple(*map(_int, stride)),
               b"\x89", _call(_global("collections", "OrderedDict")))


def _write(path, fmt: str, state: bytes, storages: dict[str, bytes],
           counts: dict[str, int] | None = None, first: bytes | None = None):
  """A checkpoint in ``fmt`` holding the pickle ``state`` and ``storages``
  (key -> raw little-endian bytes; ``counts``: element counts written before
  them in the legacy format, default bytes / 4)."""
  if fmt == "zip":
    with zipfile.ZipFile(path, "w") as z:
      z.writestr("archive/data.pkl", state)
      z.writestr("archive/byteorder", "little")
      for key, raw in storages.items():
        z.writestr(f"archive/data/{key}", raw)
    return
  counts = counts or {k: len(v) // 4 for k, v in storages.items()}
  with open(path, "wb") as f:
    f.write(first or pickle.dumps(torch_checkpoint.LEGACY_MAGIC, protocol=2))
    f.write(pickle.dumps(torch_checkpoint.LEGACY_PROTOCOL, protocol=2))
    f.write(pickle.dumps({"protocol_version": 1001, "little_endian": True,
                          "type_sizes": {"short": 2, "int": 4, "long": 4}},
                         protocol=2))
    f.write(state)
    f.write(pickle.dumps(list(storages), protocol=2))
    for key, raw in storages.items():
      f.write(struct.pack("<q", counts[key]) + raw)


# --- torch's own files ------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_reads_what_torch_saved(fmt):
  got = torch_checkpoint.load(os.path.join(FIXTURES, f"{fmt}.pt"))
  with np.load(os.path.join(FIXTURES, "expected.npz")) as npz:
    want = {k: npz[k] for k in npz.files}
  assert list(got) == list(want)   # the OrderedDict's order
  for key, value in want.items():
    assert got[key].dtype == value.dtype, key
    assert got[key].shape == value.shape, key
    np.testing.assert_array_equal(got[key], value, err_msg=key)
  # A transposed tensor and a slice at an offset of a shared storage.
  assert got["transposed"].shape == (5, 3)
  np.testing.assert_array_equal(got["slice"],
                                np.arange(5, 17, dtype=np.float32).reshape(3, 4))
  assert got["bfloat16"].dtype == np.float32   # numpy has no bfloat16
  assert got["step"].shape == () and got["empty"].shape == (0, 3)


def test_the_packaged_efficientnet_file_is_legacy_and_complete():
  from ume_jax.weights import registry, torch_efficientnet
  path = registry.locate("efficientnet_lite0")
  assert not zipfile.is_zipfile(path)
  state = torch_checkpoint.state_dict(path)
  assert len(state) == 296
  assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
  assert state["_fc.weight"].dtype == np.float32
  assert torch_efficientnet.WEIGHTS.package_file.endswith(".pth")


# --- hand-written files -----------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_hand_written_strides_offsets_and_shared_storage(tmp_path, fmt):
  data = np.arange(7, dtype=np.float32)
  pairs = _tuple(
      _tuple(_str("w"), _tensor(fmt, "0", "FloatStorage", 7, 1, (2, 3),
                                (1, 2))),
      _tuple(_str("all"), _tensor(fmt, "0", "FloatStorage", 7, 0, (7,),
                                  (1,))))
  state = _pickle(_call(_global("collections", "OrderedDict"), pairs))
  path = tmp_path / f"hand.{fmt}"
  _write(path, fmt, state, {"0": data.tobytes()})
  got = torch_checkpoint.state_dict(path)
  np.testing.assert_array_equal(got["w"], [[1, 3, 5], [2, 4, 6]])
  np.testing.assert_array_equal(got["all"], data)
  got["w"][0, 0] = -1   # a copy, not a view of the file's bytes
  assert got["all"][1] == 1


class _Payload:
  """What an attacker pickles: calling ``func(*args)`` on load."""

  def __init__(self, func, *args):
    self.func, self.args = func, args

  def __reduce__(self):
    return self.func, self.args


def _payloads(marker):
  return {
      "os.system": (_Payload(os.system, f"touch {marker}"),
                    os.system.__module__ + ".system"),
      "builtins.eval": (_Payload(eval, f"open({str(marker)!r}, 'w')"),
                        "builtins.eval"),
      "builtins.exec": (_Payload(exec, f"open({str(marker)!r}, 'w')"),
                        "builtins.exec"),
  }


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("payload", ("os.system", "builtins.eval",
                                     "builtins.exec"))
def test_refuses_a_pickle_asking_for_another_global(tmp_path, fmt, payload):
  marker = tmp_path / "pwned"
  obj, named = _payloads(marker)[payload]
  # The payload as the state dict's value, next to a real tensor.
  state = pickle.dumps({"w": obj}, protocol=2)
  path = tmp_path / f"evil.{fmt}"
  _write(path, fmt, state, {})
  with pytest.raises(WeightsError) as e:
    torch_checkpoint.load(path)
  message = str(e.value)
  assert str(path) in message and named in message
  assert "allow-list" in message and "\n" not in message
  assert not marker.exists()   # nothing it names was called


def test_refuses_a_payload_in_place_of_the_legacy_magic_number(tmp_path):
  marker = tmp_path / "pwned"
  obj, named = _payloads(marker)["os.system"]
  path = tmp_path / "evil.pth"
  _write(path, "legacy", _pickle(b"N"), {},
         first=pickle.dumps(obj, protocol=2))
  with pytest.raises(WeightsError, match=named):
    torch_checkpoint.load(path)
  assert not marker.exists()


@pytest.mark.parametrize("fmt", FORMATS)
def test_refuses_unknown_torch_globals_and_saved_modules(tmp_path, fmt):
  # A whole nn.Module pickles its class; a storage type outside the list.
  module = _pickle(_call(_global("torch.nn.modules.linear", "Linear")))
  path = tmp_path / f"model.{fmt}"
  _write(path, fmt, module, {})
  with pytest.raises(WeightsError, match="torch.nn.modules.linear.Linear"):
    torch_checkpoint.load(path)
  source = _pickle(_tuple(_str("module"), _str("class Linear: ...")) + b"Q")
  _write(path, fmt, source, {})
  with pytest.raises(WeightsError, match="'module'"):
    torch_checkpoint.load(path)


def test_storage_types_cannot_be_called(tmp_path):
  # An allowed global used for something else than a storage reference.
  state = _pickle(_call(_global("torch", "FloatStorage"), _int(10 ** 12)))
  path = tmp_path / "call.pt"
  _write(path, "zip", state, {})
  with pytest.raises(WeightsError, match="cannot be unpickled"):
    torch_checkpoint.load(path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_view_past_its_storage_is_refused(tmp_path, fmt):
  # Without the check, as_strided would read memory beyond the storage.
  state = _pickle(_dict(w=_tensor(fmt, "0", "FloatStorage", 4, 2, (100,),
                                  (1,))))
  path = tmp_path / f"oob.{fmt}"
  _write(path, fmt, state, {"0": np.zeros(4, np.float32).tobytes()})
  with pytest.raises(WeightsError, match="reaches element 101"):
    torch_checkpoint.load(path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncated_storages(tmp_path, fmt):
  state = _pickle(_dict(w=_tensor(fmt, "0", "FloatStorage", 4, 0, (4,),
                                  (1,))))
  path = tmp_path / f"short.{fmt}"
  _write(path, fmt, state, {"0": np.zeros(3, np.float32).tobytes()},
         counts={"0": 4})
  with pytest.raises(WeightsError, match=f"{path}.*(truncated|needs 16)"):
    torch_checkpoint.load(path)


def test_a_legacy_count_larger_than_the_file(tmp_path):
  state = _pickle(_dict(w=_tensor("legacy", "0", "FloatStorage", 2 ** 40,
                                  0, (1,), (1,))))
  path = tmp_path / "huge.pth"
  _write(path, "legacy", state, {"0": b"\0" * 8}, counts={"0": 2 ** 40})
  with pytest.raises(WeightsError, match="truncated"):
    torch_checkpoint.load(path)


def test_not_a_checkpoint(tmp_path):
  text = tmp_path / "notes.pth"
  text.write_text("not a pickle")
  with pytest.raises(WeightsError, match="notes.pth.*cannot be unpickled"):
    torch_checkpoint.load(text)
  plain = tmp_path / "plain.pkl"
  plain.write_bytes(pickle.dumps({"a": 1}, protocol=2))
  with pytest.raises(WeightsError, match="magic number"):
    torch_checkpoint.load(plain)
  with pytest.raises(WeightsError, match="cannot be read"):
    torch_checkpoint.load(tmp_path / "absent.pth")


def test_state_dict_wants_a_mapping_of_tensors(tmp_path):
  path = tmp_path / "list.pt"
  _write(path, "zip", _pickle(_tuple(_int(1), _int(2))), {})
  assert torch_checkpoint.load(path) == (1, 2)
  with pytest.raises(WeightsError, match="not a flat mapping"):
    torch_checkpoint.state_dict(path)
