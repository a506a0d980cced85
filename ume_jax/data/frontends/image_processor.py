"""A pre-trained image tower's front end, from ``preprocessor_config.json``.

``data.image_processor`` = a Hugging Face snapshot folder (holding
``preprocessor_config.json``) or that file. Its keys, as transformers'
``CLIPImageProcessor`` / ``ViTImageProcessor`` (and their ``Fast`` and older
``FeatureExtractor`` names) write them, are read into an ``ImageProcessor``
and applied as the slow (PIL) processor does, without transformers:

1. RGB conversion (``Image.convert("RGB")``, always: the towers read 3
   channels);
2. resize (``do_resize``, ``size``, ``resample``): ``{"shortest_edge": S}``
   makes the short side S and the long side ``int(S * long / short)``
   (transformers' ``get_resize_output_image_size(default_to_square=False)``,
   truncated, not rounded); ``{"height": H, "width": W}`` stretches to H x W.
   An int ``size`` (old files) is the shortest edge for CLIP, a square for
   ViT (as transformers' ``get_size_dict`` reads it for each). PIL's filter
   is ``resample`` (0 nearest, 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5
   hamming);
3. centre crop (``do_center_crop``, ``crop_size``; CLIP only): offsets
   ``top = (h - crop_h) // 2``, ``left = (w - crop_w) // 2`` (transformers'
   ``center_crop``), zero-padded where the image is smaller than the crop;
4. rescale and normalise: ``(x * rescale_factor - image_mean) / image_std``.

Steps 1-3 make a uint8 image of one shape: that is what the image+text
datasets store when they are prepared (``Geometry``, which also names the
prepared folder). Step 4 happens at load, through the pipeline's
``(x / 255 - mean) / std`` with ``ImageProcessor.image_stats()``.

A key this reader does not implement is refused (DataError naming the file
and the key) when its value would change the pixels (``do_pad: true``, a
``size`` with ``longest_edge``, ``crop_pct``, ...); ``null`` / ``false``
values and bookkeeping keys (``image_processor_type``, ``processor_class``,
``data_format``, ...) are ignored. The ``Fast`` processors resize with
torchvision, which differs from PIL by a few levels of 255 at edges; this
reader reproduces the PIL (slow) processor.
"""

import dataclasses
import json
import math
import os
import pathlib

import numpy as np
from PIL import Image

from ume_jax.data.errors import DataError
from ume_jax.weights import hf_snapshot

FILE = "preprocessor_config.json"
PATH_KEY = "data.image_processor"
# PIL's resampling filters by the integer transformers writes.
FILTERS = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic",
           4: "box", 5: "hamming"}
BILINEAR, BICUBIC = 2, 3
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_COMMON = ("do_resize", "size", "resample", "do_rescale", "rescale_factor",
           "do_normalize", "image_mean", "image_std", "do_convert_rgb")
_CROP = ("do_center_crop", "crop_size")
# Per processor class: the keys it implements and its defaults (what
# transformers uses for a key absent from the file).
_TYPES = {
    "CLIPImageProcessor": dict(
        keys=_COMMON + _CROP, square=False,
        defaults=dict(do_resize=True, size={"shortest_edge": 224},
                      resample=BICUBIC, do_center_crop=True,
                      crop_size={"height": 224, "width": 224},
                      do_rescale=True, rescale_factor=1 / 255,
                      do_normalize=True, image_mean=OPENAI_CLIP_MEAN,
                      image_std=OPENAI_CLIP_STD, do_convert_rgb=True)),
    "ViTImageProcessor": dict(
        keys=_COMMON, square=True,
        defaults=dict(do_resize=True, size={"height": 224, "width": 224},
                      resample=BILINEAR, do_rescale=True,
                      rescale_factor=1 / 255, do_normalize=True,
                      image_mean=(0.5, 0.5, 0.5), image_std=(0.5, 0.5, 0.5),
                      do_convert_rgb=None)),
    # No image_processor_type: every key must be given (no defaults).
    "": dict(keys=_COMMON + _CROP, square=None, defaults={}),
}
# Keys that never change the pixel values (what the processor is called,
# where or in which layout it returns them).
_BOOKKEEPING = frozenset((
    "image_processor_type", "feature_extractor_type", "processor_class",
    "_processor_class", "auto_map", "_valid_processor_keys",
    "_valid_kwargs_names", "data_format", "input_data_format",
    "return_tensors", "device", "disable_grouping", "default_to_square"))
_EXPECTED = (f"Expected a Hugging Face snapshot folder holding {FILE} (a CLIP"
             f" or ViT image tower's), or the {FILE} file itself.")


def resolve(path, key: str = PATH_KEY) -> pathlib.Path:
  """``path`` (a snapshot folder, the hub cache's model folder, or the
  file itself) as the file's Path; DataError naming the path, ``key`` and
  what is expected otherwise."""
  return pathlib.Path(hf_snapshot.snapshot_file(path, FILE, key, DataError,
                                                file_ok=True))


def shortest_edge_size(height: int, width: int, shortest_edge: int
                       ) -> tuple[int, int]:
  """(h, w) after resizing the short side to ``shortest_edge``, keeping the
  aspect ratio: transformers' ``get_resize_output_image_size`` with
  ``default_to_square=False`` (the long side truncated by ``int``)."""
  short, long = (width, height) if width <= height else (height, width)
  new_short, new_long = shortest_edge, int(shortest_edge * long / short)
  return (new_long, new_short) if width <= height else (new_short, new_long)


def center_crop_offsets(height: int, width: int, crop_height: int,
                        crop_width: int) -> tuple[int, int]:
  """(top, left) of the centre crop in the (height, width) image, as
  transformers' ``center_crop``; negative where the image is smaller than
  the crop (the rest is zero padding)."""
  return (height - crop_height) // 2, (width - crop_width) // 2


def center_crop(x: np.ndarray, crop_height: int, crop_width: int
                ) -> np.ndarray:
  """The (crop_height, crop_width) centre of an (H, W, C) array, zero-padded
  as transformers' ``center_crop`` where the array is smaller."""
  h, w = x.shape[:2]
  top, left = center_crop_offsets(h, w, crop_height, crop_width)
  if top >= 0 and left >= 0:
    return np.ascontiguousarray(
        x[top:top + crop_height, left:left + crop_width])
  new_h, new_w = max(crop_height, h), max(crop_width, w)
  pad_top = math.ceil((new_h - h) / 2)
  pad_left = math.ceil((new_w - w) / 2)
  padded = np.zeros((new_h, new_w) + x.shape[2:], x.dtype)
  padded[pad_top:pad_top + h, pad_left:pad_left + w] = x
  top, left = top + pad_top, left + pad_left
  return np.ascontiguousarray(
      padded[top:top + crop_height, left:left + crop_width])


@dataclasses.dataclass(frozen=True)
class Geometry:
  """How a stored image is made from a decoded one: resize, then centre crop.

  Attributes:
    resize: "stretch" (to ``size`` = (H, W), aspect not kept),
      "shortest_edge" (``size`` = (S,)) or "none".
    size: see ``resize``.
    resample: PIL's filter (``FILTERS``).
    crop: (H, W) of the centre crop, or None.
  """

  resize: str
  size: tuple[int, ...]
  resample: int = BILINEAR
  crop: tuple[int, int] | None = None

  def __post_init__(self):
    if self.resize not in ("stretch", "shortest_edge", "none"):
      raise ValueError(f"Geometry.resize = {self.resize!r}")
    if self.resize == "stretch" and self.crop == tuple(self.size):
      object.__setattr__(self, "crop", None)  # a no-op crop: one name
    if self.resize == "shortest_edge" or self.resize == "none":
      if self.crop is None:
        raise ValueError(f"Geometry {self}: no fixed output shape")

  @classmethod
  def stretch(cls, image_size) -> "Geometry":
    """The image+text datasets' own front end: a bilinear stretch."""
    return cls("stretch", tuple(int(x) for x in image_size), BILINEAR)

  @property
  def output_size(self) -> tuple[int, int]:
    """(H, W) of every stored image."""
    return tuple(self.crop) if self.crop else tuple(self.size)

  def resized_size(self, height: int, width: int) -> tuple[int, int]:
    """(h, w) of an (height, width) image after the resize step."""
    if self.resize == "stretch":
      return tuple(self.size)
    if self.resize == "shortest_edge":
      return shortest_edge_size(height, width, self.size[0])
    return height, width

  def apply(self, im: Image.Image) -> np.ndarray:
    """uint8 (H, W, 3): ``im`` converted to RGB, resized, centre-cropped."""
    im = im.convert("RGB")
    if self.resize != "none":
      h, w = self.resized_size(im.height, im.width)
      im = im.resize((w, h), self.resample)
    x = np.asarray(im, np.uint8)
    if self.crop:
      x = center_crop(x, *self.crop)
    return x

  def name(self) -> str:
    """The prepared folder's name for this geometry: ``s<H>x<W>`` (the
    stored shape), then how it was made unless a bilinear stretch (the
    datasets' own): ``-bicubic`` (stretch), ``-r<h>x<w>-<filter>`` (stretch
    then crop), ``-short<S>-<filter>`` (shortest edge then crop),
    ``-crop`` (crop only). Different geometries never share a name."""
    h, w = self.output_size
    parts = [f"s{h}x{w}"]
    if self.resize == "stretch":
      if self.crop:
        parts.append(f"r{self.size[0]}x{self.size[1]}")
      if self.crop or self.resample != BILINEAR:
        parts.append(FILTERS[self.resample])
    elif self.resize == "shortest_edge":
      parts += [f"short{self.size[0]}", FILTERS[self.resample]]
    else:
      parts.append("crop")
    return "-".join(parts)

  def describe(self) -> dict:
    """JSON-able record (as the prepared dataset's metadata keeps it)."""
    return {"resize": self.resize, "size": list(self.size),
            "resample": FILTERS[self.resample],
            "crop": list(self.crop) if self.crop else None}


@dataclasses.dataclass(frozen=True)
class ImageProcessor:
  """A ``preprocessor_config.json``, read.

  Attributes:
    geometry: resize + crop (applied when a dataset is prepared).
    rescale_factor: x is multiplied by it (1.0 with ``do_rescale`` false).
    mean, std: per channel, after rescaling (0 and 1 with ``do_normalize``
      false).
    path: the file read (for messages).
  """

  geometry: Geometry
  rescale_factor: float
  mean: tuple[float, float, float]
  std: tuple[float, float, float]
  path: str = dataclasses.field(default="", compare=False)

  @property
  def output_size(self) -> tuple[int, int]:
    return self.geometry.output_size

  def image_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) in the pipeline's convention, ``(x / 255 - mean) / std``,
    giving ``(x * rescale_factor - self.mean) / self.std``."""
    k = 255.0 * self.rescale_factor  # 1.0 for the usual 1/255
    return (tuple(m / k for m in self.mean), tuple(s / k for s in self.std))


def _error(file, what: str) -> DataError:
  return DataError(f"{PATH_KEY}: {os.fspath(file)!r} {what}. Expected the"
                   " keys of a CLIPImageProcessor / ViTImageProcessor as"
                   f" transformers writes them ({', '.join(_COMMON + _CROP)});"
                   f" or leave {PATH_KEY} empty for the dataset's own front"
                   " end.")


def _int(file, key, v) -> int:
  if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
    raise _error(file, f"has {key} = {v!r}; expected a positive integer")
  return v


def _hw(file, key, v, square: bool | None) -> tuple[str, tuple[int, ...]]:
  """A size value -> ("stretch", (H, W)) or ("shortest_edge", (S,))."""
  if isinstance(v, int) and not isinstance(v, bool):
    if square is None:
      raise _error(file, f"has {key} = {v} (an int) and no"
                   " image_processor_type or default_to_square to say"
                   " whether it is a square or the shortest edge; write"
                   f' {{"height": {v}, "width": {v}}} or'
                   f' {{"shortest_edge": {v}}}')
    if square:
      return "stretch", (_int(file, key, v),) * 2
    return "shortest_edge", (_int(file, key, v),)
  if isinstance(v, (list, tuple)) and len(v) == 2:  # (height, width)
    return "stretch", (_int(file, key, v[0]), _int(file, key, v[1]))
  if isinstance(v, dict):
    keys = set(v)
    if keys == {"height", "width"}:
      return "stretch", (_int(file, f"{key}.height", v["height"]),
                         _int(file, f"{key}.width", v["width"]))
    if keys == {"shortest_edge"}:
      return "shortest_edge", (_int(file, f"{key}.shortest_edge",
                                    v["shortest_edge"]),)
    extra = sorted(keys - {"height", "width", "shortest_edge"})
    raise _error(file, f"has {key}.{extra[0] if extra else sorted(keys)[0]}"
                 f" ({key} = {v}); supported: {key} = {{\"shortest_edge\":"
                 " S} or {\"height\": H, \"width\": W}")
  raise _error(file, f"has {key} = {v!r}; expected {{\"shortest_edge\": S}},"
               " {\"height\": H, \"width\": W} or an int")


def _channels(file, key, v, positive: bool) -> tuple[float, float, float]:
  vals = [v] * 3 if isinstance(v, (int, float)) else v
  ok = (isinstance(vals, (list, tuple)) and len(vals) == 3 and all(
      isinstance(x, (int, float)) and not isinstance(x, bool) for x in vals))
  if not ok or (positive and min(vals) <= 0):
    raise _error(file, f"has {key} = {v!r}; expected a number or 3 (one per"
                 " RGB channel)" + (", all > 0" if positive else ""))
  return tuple(float(x) for x in vals)


def _type(file, cfg: dict) -> str:
  key = ("image_processor_type" if "image_processor_type" in cfg
         else "feature_extractor_type")
  kind = str(cfg.get(key) or "")
  base = kind.replace("FeatureExtractor", "ImageProcessor")
  for suffix in ("Fast", "Pil"):  # transformers 5 names the PIL one "Pil"
    base = base[:-len(suffix)] if base.endswith(suffix) else base
  if base not in _TYPES:
    raise _error(file, f"has {key} = {kind!r}, whose resize this reader"
                 " does not know (supported: CLIPImageProcessor,"
                 " ViTImageProcessor, their Fast / FeatureExtractor names, or"
                 " none with every key given)")
  return base


def parse(cfg: dict, file="<dict>") -> ImageProcessor:
  """The ``ImageProcessor`` of a parsed preprocessor_config.json."""
  if not isinstance(cfg, dict):
    raise _error(file, f"holds a JSON {type(cfg).__name__}, not an object")
  kind = _type(file, cfg)
  spec = _TYPES[kind]
  for k, v in cfg.items():
    if (k not in spec["keys"] and k not in _BOOKKEEPING and v is not None
        and v is not False):
      raise _error(file, f"has {k} = {json.dumps(v)}, which this reader does"
                   f" not implement for {kind or 'an untyped processor'} and"
                   " which would change the pixels (remove it, or set it to"
                   " null / false, if the image tower does not need it)")

  def get(k):
    v = cfg.get(k)
    if v is None:
      v = spec["defaults"].get(k)
    if v is None and k != "do_convert_rgb":
      raise _error(file, f"lacks {k} (an untyped processor has no"
                   " defaults)")
    return v

  def flag(k) -> bool:
    v = get(k)
    if not isinstance(v, bool):
      raise _error(file, f"has {k} = {v!r}; expected true or false")
    return v

  square = spec["square"]
  if isinstance(cfg.get("default_to_square"), bool):
    square = cfg["default_to_square"]
  crop = None
  if "do_center_crop" in spec["keys"] and flag("do_center_crop"):
    mode, crop = _hw(file, "crop_size", get("crop_size"), square=True)
    if mode != "stretch":
      raise _error(file, f"has crop_size = {get('crop_size')}; expected"
                   " {\"height\": H, \"width\": W} or an int")
  if flag("do_resize"):
    mode, size = _hw(file, "size", get("size"), square)
    resample = get("resample")
    if (not isinstance(resample, int) or isinstance(resample, bool)
        or resample not in FILTERS):
      raise _error(file, f"has resample = {resample!r}; expected PIL's"
                   f" filter number, one of {FILTERS}")
  else:
    mode, size, resample = "none", (), BILINEAR
  if mode != "stretch" and crop is None:
    what = "does not resize" if mode == "none" else "resizes the shortest edge"
    raise _error(file, f"{what} without do_center_crop, so images keep"
                 " their own aspect ratio and have no one shape to store;"
                 " a dataset needs do_center_crop with crop_size (or a"
                 " size of {\"height\": H, \"width\": W})")
  if flag("do_rescale"):
    factor = get("rescale_factor")
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or (
        factor <= 0):
      raise _error(file, f"has rescale_factor = {factor!r}; expected a"
                   " number > 0")
    factor = float(factor)
  else:
    factor = 1.0
  if flag("do_normalize"):
    mean = _channels(file, "image_mean", get("image_mean"), positive=False)
    std = _channels(file, "image_std", get("image_std"), positive=True)
  else:
    mean, std = (0.0,) * 3, (1.0,) * 3
  return ImageProcessor(Geometry(mode, tuple(size), int(resample), crop),
                        factor, mean, std, path=os.fspath(file))


def read(path, key: str = PATH_KEY) -> ImageProcessor:
  """The ``ImageProcessor`` of ``path`` (a snapshot folder or its
  preprocessor_config.json); DataError naming the file and key at fault."""
  file = resolve(path, key)
  try:
    cfg = json.loads(file.read_text(encoding="utf-8"))
  except (OSError, ValueError) as e:  # UnicodeDecodeError is a ValueError
    raise DataError(f"{key}: {os.fspath(file)!r} cannot be read as JSON"
                    f" ({type(e).__name__}: {e}). {_EXPECTED}") from e
  return parse(cfg, file)
