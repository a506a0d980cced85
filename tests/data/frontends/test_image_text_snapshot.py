"""MM-IMDB and Food-101 with a snapshot's front ends (data.image_processor,
data.tokenizer="snapshot"): prepared into a folder of their own beside the
default one, processor-made images and snapshot ids, both loading from one
data_dir."""

import dataclasses
import pathlib

import ml_collections
import numpy as np
import pytest
from PIL import Image

from tests import fakes
from ume_jax.data.datasets import food101
from ume_jax.data.datasets import mmimdb
from ume_jax.data.errors import DataError
from ume_jax.data.frontends import image_processor as ip
from ume_jax.data.frontends import pretrained_tokenizer
from ume_jax.data.frontends import text_tokenizer


@dataclasses.dataclass(frozen=True)
class Case:
  module: object
  folder: str           # tfds name
  suffix: str           # what the dataset adds to the shape name
  write: object         # raw files -> manual_dir
  image_file: object    # (manual_dir, record) -> the source image's path


def _mmimdb_image(manual, rec):
  return manual / "dataset" / f"{rec['id'].decode()}.jpeg"


def _food_image(manual, rec):
  name = rec["id"].decode()
  split = "test" if (manual / "images" / "test" / name.rsplit("_", 1)[0]
                     / name).is_file() else "train"
  return manual / "images" / split / name.rsplit("_", 1)[0] / name


CASES = [
    Case(mmimdb, "mmimdb", "", lambda d: fakes.write_mmimdb_raw(d, n=20),
         _mmimdb_image),
    Case(food101, "upmc_food101", "_v050",
         lambda d: fakes.write_food101(d, n_train=4, n_test=2), _food_image),
]


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
  """A snapshot folder: tokenizer.json + preprocessor_config.json
  (shortest edge 24, crop 24 x 24, bicubic, mean / std not ImageNet's)."""
  d = tmp_path_factory.mktemp("snapshot")
  fakes.write_wordpiece_tokenizer_json(d)
  fakes.write_processor_config(d)
  return d


def _cfg(case, data_dir, manual, **kw):
  return ml_collections.ConfigDict(dict(
      name=case.module.NAME, data_dir=str(data_dir), manual_dir=str(manual),
      vocab_size=100, max_len=12, **kw))


def _folders(data_dir, case):
  return sorted(p.relative_to(data_dir / case.folder).as_posix()
                for p in (data_dir / case.folder).rglob("dataset_info.json"))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.folder)
def test_snapshot_front_ends_beside_the_default(case, snapshot, tmp_path):
  manual = case.write(tmp_path / "raw")
  data_dir = tmp_path / "tfds"
  default = case.module.load(_cfg(case, data_dir, manual))
  assert default.spec.input_shapes["image"] == case.module.IMAGE_SIZE + (3,)

  ds = case.module.load(_cfg(case, data_dir, manual,
                             image_processor=str(snapshot),
                             tokenizer="snapshot",
                             tokenizer_path=str(snapshot)))
  name = f"s24x24-short24-bicubic{case.suffix}"
  assert _folders(data_dir, case) == [
      f"{case.module.VERSION}/dataset_info.json",
      f"{name}/{case.module.VERSION}/dataset_info.json"]
  assert ds.spec.input_shapes == {"image": (24, 24, 3), "text": (12,)}
  assert ds.spec.input_dtypes == {"text": "int32"}
  assert ds.spec.split_sizes == default.spec.split_sizes
  tok = pretrained_tokenizer.load(snapshot, 12)
  assert ds.vocab_sizes == {"text": tok.get_vocab_size()}
  # Only the default front end trained (and cached) a WordPiece vocabulary.
  assert not list((data_dir / case.folder / name).rglob("tokenizer_*"))

  # Stored: the processor's resize + crop of the source file, uint8.
  src = ds._source("test")
  geometry = ip.read(snapshot).geometry
  n = min(len(src), 8)
  for i in range(n):
    rec = src[i]
    with Image.open(case.image_file(manual, rec)) as im:
      np.testing.assert_array_equal(rec["image"], geometry.apply(im))
  # Loaded: normalised with the processor's mean / std; snapshot ids.
  b = next(ds.eval_batches("test", n, None, process_index=0,
                           process_count=1))
  stored = np.stack([src[i]["image"] for i in range(n)]) / 255.0
  want = (stored - np.array([0.1, 0.2, 0.3])) / np.array([0.5, 0.25, 0.125])
  np.testing.assert_allclose(b["image"], want, atol=1e-5)
  texts = [src[i]["text"].decode() for i in range(n)]
  np.testing.assert_array_equal(b["text"], text_tokenizer.encode(tok, texts,
                                                                 12))
  assert (b["text"][:, 0] == 2).all()  # [CLS]
  assert ((b["text"] == 3).sum(1) == 1).all()  # one [SEP], kept if cut

  # The default dataset still loads from the same data_dir, unchanged.
  again = case.module.load(_cfg(case, data_dir, manual))
  assert again.spec.input_shapes == default.spec.input_shapes
  assert again._source("test")[0]["image"].shape == (
      case.module.IMAGE_SIZE + (3,))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.folder)
def test_bad_front_end_settings_fail_before_preparing(case, snapshot,
                                                      tmp_path):
  data_dir = tmp_path / "tfds"
  manual = tmp_path / "not_there"  # never read: the config fails first
  with pytest.raises(DataError) as e:
    case.module.load(_cfg(case, data_dir, manual, image_size=(16, 16),
                          image_processor=str(snapshot)))
  msg = str(e.value)
  assert "data.image_size = (16, 16)" in msg and str(snapshot) in msg
  assert "24 x 24" in msg
  # Equal to the processor's output: fine (checked without preparing).
  with pytest.raises(DataError, match="data.manual_dir"):
    case.module.load(_cfg(case, data_dir, manual, image_size=(24, 24),
                          image_processor=str(snapshot)))
  with pytest.raises(DataError) as e:
    case.module.load(_cfg(case, data_dir, manual, tokenizer="bpe"))
  assert "data.tokenizer" in str(e.value) and "snapshot" in str(e.value)
  with pytest.raises(DataError, match="data.tokenizer_path"):
    case.module.load(_cfg(case, data_dir, manual, tokenizer="snapshot",
                          tokenizer_path=str(tmp_path / "missing")))
  with pytest.raises(DataError, match="data.image_processor"):
    case.module.load(_cfg(case, data_dir, manual,
                          image_processor=str(tmp_path / "missing")))
  assert not data_dir.exists()


def test_stretch_processors_name_their_filter(tmp_path):
  """A bilinear stretch is the datasets' own resize (same records, same
  folder); a bicubic one has its own."""
  manual = fakes.write_mmimdb_raw(tmp_path / "raw", n=10)
  vit = dict(image_processor_type="ViTImageProcessor", size={"height": 16,
                                                              "width": 16},
             resample=2, crop_size=None, do_center_crop=None)
  fakes.write_processor_config(tmp_path / "bilinear", **vit)
  fakes.write_processor_config(tmp_path / "bicubic", **{**vit, "resample": 3})
  data_dir = tmp_path / "tfds"
  plain = mmimdb.prepare(data_dir, manual, (16, 16))
  same = mmimdb.prepare(data_dir, manual, None,
                        image_processor=str(tmp_path / "bilinear"))
  other = mmimdb.prepare(data_dir, manual, None,
                         image_processor=str(tmp_path / "bicubic"))
  assert same.data_dir == plain.data_dir
  assert pathlib.Path(other.data_dir).parent.name == "s16x16-bicubic"
  assert other.info.metadata["image_processor"] == {
      "resize": "stretch", "size": [16, 16], "resample": "bicubic",
      "crop": None}
