"""Whisper tiny.en: log-mel front end, CTranslate2 reader, Flax encoder.

Expected values come from the original implementations
(scripts/make_whisper_fixtures.py): transformers' WhisperFeatureExtractor
for the log-mel and CTranslate2 4.8.5 (float32 compute) for the encoder,
on espeak-ng speech. The weights are read from the installed package.
"""
import os
import shutil
import struct

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ume_jax.data.frontends import log_mel
from ume_jax.models import registry as model_registry
from ume_jax.models.whisper import WhisperEncoder
from ume_jax.weights import registry, whisper

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures",
                        "pretrained")

# The reference log-mel is float32 numpy with the same formula; measured max
# abs diff 6.7e-8 (values in about [-1, 2]). 1e-5 still catches any filter,
# window or framing mistake (those give errors above 1e-2).
LOG_MEL_ATOL = 1e-5
# Both sides run float32 on the same fp16 weights upcast; only summation
# order differs (XLA vs CTranslate2's GEMMs) over 2 convs + 4 blocks.
# Measured max abs diff: 2.3e-5 on frames of magnitude up to 10, 4e-6 on
# the time mean, 1.5e-5 on the 2-s input. A layout or epsilon/GELU mistake
# gives >1e-3.
FRAME_ATOL, MEAN_ATOL = 1e-4, 2e-5


def _fixture(name):
  return np.load(os.path.join(FIXTURES, f"whisper_{name}.npy"))


def _wave():
  return _fixture("wave").astype(np.float32) / 32768


def _reference_mel_30s():
  """(80, 3000): the stored frames, then the constant silence frame."""
  mel = _fixture("log_mel")
  silence = np.repeat(mel[:, -1:], 3000 - mel.shape[1], axis=1)
  return np.concatenate([mel, silence], axis=1)


@pytest.fixture(scope="module")
def params():
  return registry.load("whisper_tiny_en")


def _encode(params, mel, pool="none"):
  return np.asarray(WhisperEncoder(pool=pool).apply({"params": params},
                                                    jnp.asarray(mel)[None]))[0]


def test_log_mel_matches_reference():
  ours = log_mel.log_mel(_wave())                         # 30-s window
  assert ours.shape == (80, 3000) and ours.dtype == np.float32
  np.testing.assert_allclose(ours, _reference_mel_30s(), atol=LOG_MEL_ATOL,
                             rtol=0)


def test_log_mel_short_window():
  full = log_mel.log_mel(_wave())
  short = log_mel.log_mel(_wave(), num_samples=32000)
  assert short.shape == (80, 200)
  # Same frames except the last, whose window reaches past the 2 s and is
  # reflect-padded here but zero-padded in the 30-s window.
  np.testing.assert_allclose(short[:, :199], full[:, :199], atol=1e-6)
  with pytest.raises(ValueError, match="multiple of 320"):
    log_mel.log_mel(_wave(), num_samples=16160)
  with pytest.raises(ValueError, match="mono"):
    log_mel.log_mel(np.zeros((2, 16000)))


def test_resample_keeps_pitch():
  t = np.arange(22050) / 22050
  wave = log_mel.resample(np.sin(2 * np.pi * 1000 * t), 22050)
  assert len(wave) == 16000
  peak_hz = np.argmax(np.abs(np.fft.rfft(wave))) * 16000 / len(wave)
  assert abs(peak_hz - 1000) <= 1


def test_encoder_matches_ctranslate2(params):
  seq = _encode(params, _reference_mel_30s())
  assert seq.shape == (1500, 384)
  np.testing.assert_allclose(seq[_fixture("frame_index")], _fixture("frames"),
                             atol=FRAME_ATOL, rtol=0)
  np.testing.assert_allclose(seq.mean(0), _fixture("mean"), atol=MEAN_ATOL,
                             rtol=0)


def test_shorter_input_matches_ctranslate2(params):
  mel = _fixture("log_mel")[:, :200]                      # 2 s
  seq = _encode(params, mel)
  assert seq.shape == (100, 384)
  np.testing.assert_allclose(seq[:20], _fixture("short_frames"),
                             atol=FRAME_ATOL, rtol=0)
  pooled = _encode(params, mel, pool="mean")
  assert pooled.shape == (384,) and pooled.dtype == np.float32
  np.testing.assert_allclose(pooled, _fixture("short_mean"), atol=MEAN_ATOL,
                             rtol=0)


def test_read_tree_matches_init_tree(params):
  model = model_registry.build_encoder("whisper_tiny_en")
  init = flax.core.meta.unbox(
      model.init(jax.random.key(0), jnp.zeros((1, 80, 20)))["params"])
  shapes = lambda tree: jax.tree.map(lambda a: a.shape, tree)  # noqa: E731
  assert shapes(params) == shapes(init)
  assert all(a.dtype == np.float32 for a in jax.tree.leaves(params))
  assert registry.get("whisper_tiny_en").encoder == "whisper_tiny_en"
  assert model_registry.input_ndim("whisper_tiny_en") == 2
  # A fresh model starts from Whisper's sinusoid; the file holds it in fp16.
  np.testing.assert_allclose(init["pos_embed"], params["pos_embed"],
                             atol=1e-3)


def test_zeros_input_jit_and_logical_axes(params):
  model = WhisperEncoder()
  zeros = jnp.zeros((2, 80, 40))                          # absent audio
  apply = jax.jit(lambda p, x: model.apply({"params": p}, x))
  out = apply(params, zeros)
  assert out.shape == (2, 384) and out.dtype == jnp.float32
  assert np.isfinite(np.asarray(out)).all()
  np.testing.assert_allclose(out, model.apply({"params": params}, zeros),
                             atol=1e-5)
  abstract = jax.eval_shape(model.init, jax.random.key(0), zeros)["params"]
  specs = nn.get_partition_spec(abstract)
  assert specs["conv1"]["kernel"] == jax.sharding.PartitionSpec(
      "conv_width", "conv_in", "embed")
  assert specs["block0"]["mlp_in"]["kernel"] == jax.sharding.PartitionSpec(
      "embed", "mlp")


def test_bad_input_shapes():
  model = WhisperEncoder()
  for shape in ((1, 80, 41), (1, 80, 3002), (1, 64, 40), (80, 40)):
    with pytest.raises(ValueError, match="WhisperEncoder"):
      model.init(jax.random.key(0), jnp.zeros(shape))


def _write_ct2(path, variables, spec="WhisperSpec"):
  """A minimal CTranslate2 model.bin (float32 variables, no aliases)."""

  def string(s):
    return struct.pack("<H", len(s) + 1) + s.encode() + b"\0"

  out = [struct.pack("<I", 6), string(spec), struct.pack("<II", 1,
                                                         len(variables))]
  for name, value in variables.items():
    value = np.asarray(value, np.float32)
    out += [string(name), struct.pack("<B", value.ndim),
            struct.pack(f"<{value.ndim}I", *value.shape),
            struct.pack("<BI", 0, value.nbytes), value.tobytes()]
  out.append(struct.pack("<I", 0))
  with open(path, "wb") as f:
    f.write(b"".join(out))


def test_corrupt_or_wrong_files(tmp_path, params):
  real = registry.locate("whisper_tiny_en")
  variables = whisper.read_ct2(real)
  # A rewritten copy of the encoder variables reads back the same tree.
  copy = str(tmp_path / "copy.bin")
  _write_ct2(copy, variables)
  assert jax.tree.all(jax.tree.map(np.array_equal, whisper.read(copy),
                                   params))

  truncated = str(tmp_path / "truncated.bin")
  with open(real, "rb") as src, open(truncated, "wb") as dst:
    dst.write(src.read(100_000))
  with pytest.raises(registry.WeightsError, match="truncated"):
    whisper.read(truncated)

  garbage = str(tmp_path / "garbage.bin")
  with open(garbage, "wb") as f:
    f.write(np.random.default_rng(0).bytes(1000))
  with pytest.raises(registry.WeightsError, match="binary version"):
    whisper.read(garbage)

  other_spec = str(tmp_path / "other.bin")
  _write_ct2(other_spec, variables, spec="TransformerSpec")
  with pytest.raises(registry.WeightsError, match="TransformerSpec"):
    whisper.read(other_spec)

  bad_shape = str(tmp_path / "bad_shape.bin")
  _write_ct2(bad_shape, {**variables,
                         "encoder/conv1/weight": np.zeros((384, 64, 3))})
  with pytest.raises(registry.WeightsError,
                     match=r"encoder/conv1/weight.*\(384, 64, 3\)"):
    whisper.read(bad_shape)

  fewer_layers = str(tmp_path / "fewer_layers.bin")
  _write_ct2(fewer_layers, {k: v for k, v in variables.items()
                            if "layer_3/" not in k})
  with pytest.raises(registry.WeightsError, match="3 encoder layers"):
    whisper.read(fewer_layers)

  renamed = str(tmp_path / "model.bin")
  shutil.copy(garbage, renamed)
  with pytest.raises(registry.WeightsError, match="model.bin"):
    registry.load("whisper_tiny_en", renamed)
