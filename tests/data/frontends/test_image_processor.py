"""The image front end read from a Hugging Face preprocessor_config.json:
resize arithmetic, centre-crop offsets, folder names, refused keys, errors,
and (when tests/fixtures/hf/ holds them) transformers' own pixel_values."""

import pathlib

import numpy as np
import pytest
from PIL import Image

from tests import fakes
from ume_jax.data.errors import DataError
from ume_jax.data.frontends import image_processor as ip
from ume_jax.data.frontends import text_tokenizer

HF = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "hf"


def _clip(**kw):
  return {"image_processor_type": "CLIPImageProcessor",
          "size": {"shortest_edge": 24},
          "crop_size": {"height": 24, "width": 24}, **kw}


# --- arithmetic ---------------------------------------------------------------


@pytest.mark.parametrize("hw, s, want", [
    ((40, 56), 32, (32, 44)),   # 32 * 56 / 40 = 44.8: truncated, not 45
    ((56, 40), 32, (44, 32)),   # portrait: the width is the short side
    ((50, 50), 24, (24, 24)),   # square: both
    ((3, 10), 2, (2, 6)),       # 6.67 -> 6
    ((480, 640), 224, (224, 298)),  # 298.67 -> 298 (CLIP on a VGA photo)
    ((10, 7), 14, (20, 14)),    # upscaling
])
def test_shortest_edge_size_truncates_like_transformers(hw, s, want):
  assert ip.shortest_edge_size(*hw, s) == want
  g = ip.Geometry("shortest_edge", (s,), ip.BICUBIC, (s, s))
  assert g.resized_size(*hw) == want


def test_center_crop_offsets_floor_and_pad():
  assert ip.center_crop_offsets(44, 32, 32, 32) == (6, 0)
  assert ip.center_crop_offsets(45, 32, 32, 32) == (6, 0)  # 13 // 2
  assert ip.center_crop_offsets(32, 45, 32, 30) == (0, 7)
  assert ip.center_crop_offsets(20, 28, 24, 24) == (-2, 2)
  x = np.arange(45 * 32).reshape(45, 32, 1)
  np.testing.assert_array_equal(ip.center_crop(x, 32, 32), x[6:38])
  # Smaller than the crop: zero rows above (ceil(4 / 2) = 2) and below.
  ones = np.ones((20, 28, 3), np.uint8)
  out = ip.center_crop(ones, 24, 24)
  assert out.shape == (24, 24, 3)
  assert (out[:2] == 0).all() and (out[22:] == 0).all()
  assert (out[2:22] == 1).all()
  odd = ip.center_crop(np.ones((5, 5, 1)), 8, 7)  # pads 2 (ceil 1.5) / 1
  np.testing.assert_array_equal(odd[:, 3, 0], [0, 0, 1, 1, 1, 1, 1, 0])
  np.testing.assert_array_equal(odd[3, :, 0], [0, 1, 1, 1, 1, 1, 0])


def test_apply_is_pil_resize_then_crop():
  rng = np.random.default_rng(0)
  im = Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8))
  g = ip.parse(_clip()).geometry
  want = np.asarray(im.resize((33, 24), Image.BICUBIC))[:, 4:28]
  np.testing.assert_array_equal(g.apply(im), want)
  # The datasets' own front end: a bilinear stretch, as before.
  g = ip.Geometry.stretch((16, 12))
  np.testing.assert_array_equal(
      g.apply(im.convert("L")),
      np.asarray(im.convert("L").convert("RGB").resize((12, 16),
                                                       Image.BILINEAR)))


def test_geometry_names_are_distinct():
  geometries = [
      ip.Geometry.stretch((32, 32)),
      ip.Geometry("stretch", (32, 32), ip.BICUBIC),
      ip.Geometry("stretch", (36, 36), ip.BILINEAR, (32, 32)),
      ip.Geometry("stretch", (36, 36), ip.BICUBIC, (32, 32)),
      ip.Geometry("shortest_edge", (32,), ip.BICUBIC, (32, 32)),
      ip.Geometry("shortest_edge", (32,), ip.BILINEAR, (32, 32)),
      ip.Geometry("shortest_edge", (36,), ip.BICUBIC, (32, 32)),
      ip.Geometry("none", (), ip.BILINEAR, (32, 32)),
  ]
  names = [g.name() for g in geometries]
  assert len(set(names)) == len(names), names
  assert names[0] == "s32x32"  # the name sizes had before processors
  assert names[1] == "s32x32-bicubic"
  assert names[4] == "s32x32-short32-bicubic"
  assert all(n.startswith("s32x32") for n in names)
  # A crop to the resize's own size is no crop: the same folder.
  assert ip.Geometry("stretch", (32, 32), 2, (32, 32)) == geometries[0]


# --- reading the JSON ---------------------------------------------------------


def test_reads_clip_and_vit_files_old_and_new(tmp_path):
  p = ip.read(fakes.write_processor_config(tmp_path))  # the folder's file
  assert p.geometry == ip.Geometry("shortest_edge", (24,), 3, (24, 24))
  assert p.output_size == (24, 24)
  assert ip.read(tmp_path) == p  # the folder
  assert p.image_stats() == ((0.1, 0.2, 0.3), (0.5, 0.25, 0.125))
  # Old CLIPFeatureExtractor files: int sizes, no rescale keys.
  old = ip.parse({"feature_extractor_type": "CLIPFeatureExtractor",
                  "size": 224, "crop_size": 224, "resample": 3,
                  "do_center_crop": True, "do_normalize": True,
                  "do_resize": True, "image_mean": [0.5] * 3,
                  "image_std": [0.5] * 3})
  assert old.geometry == ip.Geometry("shortest_edge", (224,), 3, (224, 224))
  assert old.rescale_factor == 1 / 255
  # ViT: an int size is a square; defaults mean / std 0.5, bilinear.
  vit = ip.parse({"feature_extractor_type": "ViTFeatureExtractor",
                  "size": 32})
  assert vit.geometry == ip.Geometry.stretch((32, 32))
  assert vit.image_stats() == ((0.5,) * 3, (0.5,) * 3)
  # Fast / Pil names, bookkeeping keys and null / false extras pass.
  fast = ip.parse(_clip(image_processor_type="CLIPImageProcessorFast",
                        data_format="channels_first", device=None,
                        do_pad=False, crop_pct=None, processor_class="X"))
  assert fast.geometry == p.geometry
  assert ip.parse(_clip(image_processor_type="CLIPImageProcessorPil")
                  ).geometry == p.geometry


def test_rescale_and_normalize_become_pipeline_stats():
  # x / 127.5 - 1 == (x / 255 - 0.5) / 0.5
  p = ip.parse(_clip(rescale_factor=1 / 127.5, image_mean=1.0,
                     image_std=1.0))
  np.testing.assert_allclose(p.image_stats(), ((0.5,) * 3, (0.5,) * 3))
  p = ip.parse(_clip(do_rescale=False, do_normalize=False))
  np.testing.assert_allclose(p.image_stats(), ((0,) * 3, (1 / 255,) * 3))


@pytest.mark.parametrize("keys, fragment", [
    ({"do_pad": True}, "do_pad"),
    ({"crop_pct": 0.875}, "crop_pct"),
    ({"size": {"shortest_edge": 24, "longest_edge": 40}},
     "size.longest_edge"),
    ({"size": {"max_height": 24, "max_width": 40}}, "size.max_height"),
    ({"do_center_crop": False}, "do_center_crop"),
    ({"resample": 7}, "resample"),
    ({"resample": [3]}, "resample"),
    ({"image_std": [0.5, 0.0, 0.5]}, "image_std"),
    ({"image_processor_type": "SiglipImageProcessor"},
     "SiglipImageProcessor"),
])
def test_refused_keys_name_file_and_key(tmp_path, keys, fragment):
  path = fakes.write_processor_config(tmp_path, **keys)
  with pytest.raises(DataError) as e:
    ip.read(path)
  msg = str(e.value)
  assert fragment in msg and str(path) in msg and "\n" not in msg


def test_vit_does_not_crop_and_untyped_needs_every_key():
  with pytest.raises(DataError, match="do_center_crop"):
    ip.parse({"image_processor_type": "ViTImageProcessor",
              "do_center_crop": True, "crop_size": 24})
  with pytest.raises(DataError, match="lacks do_center_crop"):
    ip.parse({"size": {"height": 8, "width": 8}})
  with pytest.raises(DataError, match="an int"):
    ip.parse({"do_center_crop": False, "do_resize": True, "size": 8,
              "resample": 2})


def test_missing_and_unreadable_files(tmp_path):
  for path, fragment in ((tmp_path / "nope", "does not exist"),
                         (tmp_path, "folder without")):
    with pytest.raises(DataError) as e:
      ip.read(path)
    msg = str(e.value)
    for want in (str(path), "data.image_processor", fragment,
                 "preprocessor_config.json", "snapshot folder"):
      assert want in msg, (want, msg)
  bad = tmp_path / "preprocessor_config.json"
  bad.write_text('{"size": ')
  with pytest.raises(DataError) as e:
    ip.read(tmp_path)
  assert str(bad) in str(e.value) and "JSONDecodeError" in str(e.value)
  bad.write_text("[1, 2]")
  with pytest.raises(DataError, match="not an object"):
    ip.read(bad)


# --- against transformers' own output ----------------------------------------


def _pipeline_pixels(proc, images_uint8):
  """What the image+text datasets feed the model: the processor's resize +
  crop (stored at preparation), then the load-time normalisation."""
  stored = np.stack([proc.geometry.apply(Image.fromarray(x))
                     for x in images_uint8])
  pre = text_tokenizer.TextImagePreprocess(
      image_stats=proc.image_stats(),
      tokenizer_json=text_tokenizer.train_tokenizer(["a"], 4).to_str(),
      max_len=2)
  return pre.map({"image": stored, "text": np.array([b""] * len(stored)),
                  "label": np.zeros(len(stored), np.int32)})["image"]


# PIL on the same uint8 input: the same uint8 resize; what is left is float32
# rounding in rescale / normalise (~5e-7 measured against transformers 5's
# CLIPImageProcessor / ViTImageProcessor).
ATOL = 1e-5


@pytest.mark.parametrize("name, shape", [("vit_tiny", (32, 32)),
                                         ("clip_tiny", (32, 32))])
def test_matches_transformers_pixel_values(name, shape):
  folder = HF / name
  if not (folder / "reference.npz").is_file():
    pytest.skip(f"{folder} has no reference.npz yet")
  ref = np.load(folder / "reference.npz")
  proc = ip.read(folder)
  assert proc.output_size == shape
  want = np.transpose(ref["pixel_values"], (0, 2, 3, 1))
  got = _pipeline_pixels(proc, ref["images_uint8"])
  assert got.shape == want.shape
  diff = float(np.abs(got - want).max())
  assert diff <= ATOL, f"{name}: max abs diff {diff}"
