"""ume_jax.data.prepare, the one prepare/verify of every dataset, exercised
through each dataset on a tiny fake of its real on-disk source (tests/fakes.py):
the source is checked before tfds runs, a failure while preparing leaves
nothing behind and a rerun prepares, data-dir problems, record counts,
records read back, partial / unreadable / stale prepared datasets."""
import dataclasses
import errno
import json
import logging
import os
import pathlib
import shutil
from typing import Any, Callable

import numpy as np
import pytest

from tests import fakes
from ume_jax.data import DataError
from ume_jax.data import prepare
from ume_jax.data.datasets import ave
from ume_jax.data.datasets import avdigits
from ume_jax.data.datasets import avmnist
from ume_jax.data.datasets import clipart
from ume_jax.data.datasets import food101
from ume_jax.data.datasets import kinetics_sounds
from ume_jax.data.datasets import mmimdb
from ume_jax.data.datasets import video_clips


@dataclasses.dataclass(frozen=True)
class Case:
  """One dataset: its tiny source and the faults that can befall it.

  Attributes:
    builder_cls: its tfds builder.
    write: folder -> the source written there (asset file or manual_dir);
      writing again repairs any damage done below.
    prepare: (data_dir, source, **options) -> builder.
    break_source: damages the source so that its check fails; returns a
      fragment the error names.
    corrupt_file: damages a file that is read only while records are
      generated; returns what the error names (the file, or the clip)
      (None: the whole source is read before tfds runs).
    make_stale: changes the source as a new version of it would.
    option: (prepare options other than those it was prepared with, a
      fragment the stale error names), or None.
  """

  builder_cls: type
  write: Callable[[pathlib.Path], pathlib.Path]
  prepare: Callable[..., Any]
  break_source: Callable[[pathlib.Path], str]
  corrupt_file: Callable[[pathlib.Path], str] | None
  make_stale: Callable[[pathlib.Path], None]
  option: tuple[dict, str] | None = None

  @property
  def name(self):
    return self.builder_cls.name


def _truncate(path, keep=0.5) -> str:
  data = pathlib.Path(path).read_bytes()
  pathlib.Path(path).write_bytes(data[:int(len(data) * keep)])
  return str(path)


def _truncated_asset(path) -> str:
  _truncate(path)
  return "truncated or corrupt"


def _unlink(path, fragment=None) -> str:
  pathlib.Path(path).unlink()
  return fragment or pathlib.Path(path).name


def _reverse_lines(path) -> None:
  lines = pathlib.Path(path).read_text().splitlines()
  pathlib.Path(path).write_text("\n".join(lines[::-1]) + "\n")


AVDIGITS_SIZES = {"train": 6, "validation": 3, "test": 4}
CLIPS = video_clips.ClipOptions(**fakes.CLIP_OPTIONS)


def _write_avmnist(d):
  fakes.write_avmnist(d / "avmnist", n_train=20, n_test=6)
  return d / "avmnist"


def _resave_labels_as_int32(root):
  np.save(root / "test_labels.npy",
          np.load(root / "test_labels.npy").astype(np.int32))


def _write_ave(d):
  fakes.write_ave(d / "ave", sizes=(4, 2, 2))
  return d / "ave"


def _write_kinetics_sounds(d):
  fakes.write_kinetics_sounds(d / "ks", n_train=8, n_test=2)
  return d / "ks"


def _a_test_poster(root) -> pathlib.Path:
  test_ids = json.loads((root / "split.json").read_text())["test"]
  return root / "dataset" / f"{test_ids[-1]}.jpeg"


def _garble_wav(root, clip_id: str) -> str:
  (root / "audio" / f"{clip_id}.wav").write_bytes(b"RIFF" + os.urandom(64))
  return str(root / "audio" / f"{clip_id}.wav")


def _ave_test_clip(root):
  _, vid, _, start, end = (
      (root / "testSet.txt").read_text().splitlines()[0].split("&"))
  return ave.clip_id(vid, start, end)


def _ks_test_clip(root):
  return (root / "my_test.txt").read_text().splitlines()[0].split(",")[0]


def _append_row(path, row) -> None:
  with open(path, "a", encoding="utf-8") as f:
    f.write(row)


CASES = [
    Case(
        avdigits.Avdigits,
        write=lambda d: fakes.write_asset(
            d / "avdigits.npz", fakes.make_arrays(AVDIGITS_SIZES)),
        prepare=lambda data_dir, src: avdigits.prepare(data_dir, src),
        break_source=_truncated_asset,
        corrupt_file=None,
        make_stale=lambda src: fakes.write_asset(
            src, fakes.make_arrays(AVDIGITS_SIZES, seed=1))),
    Case(
        clipart.Clipart,
        write=lambda d: fakes.write_clipart_asset(d / "clipart.npz"),
        prepare=lambda data_dir, src: clipart.prepare(data_dir, src),
        break_source=_truncated_asset,
        corrupt_file=None,
        make_stale=lambda src: fakes.write_clipart_asset(src, seed=1)),
    Case(
        avmnist.Avmnist,
        write=_write_avmnist,
        prepare=lambda data_dir, src, validation_size=4: avmnist.prepare(
            data_dir, src, validation_size),
        break_source=lambda src: _unlink(src / "train_labels.npy",
                                         "lacks 1 of the 6"),
        # Read only when the test split's records are made.
        corrupt_file=lambda src: _truncate(src / "audio" / "test_data.npy"),
        make_stale=_resave_labels_as_int32,
        option=({"validation_size": 5}, "validation_size = 4, not 5")),
    Case(
        mmimdb.Mmimdb,
        write=lambda d: fakes.write_mmimdb_raw(d / "mmimdb", n=10),
        prepare=lambda data_dir, src, image_size=(8, 8), **kw: (
            mmimdb.prepare(data_dir, src, image_size, **kw)),
        break_source=lambda src: _unlink(_a_test_poster(src)),
        corrupt_file=lambda src: _truncate(_a_test_poster(src), 0.3),
        make_stale=lambda src: (src / "split.json").write_text(json.dumps(
            json.loads((src / "split.json").read_text()), indent=1))),
    Case(
        food101.UpmcFood101,
        write=lambda d: fakes.write_food101(d / "food101", n_train=3,
                                            n_test=1),
        prepare=lambda data_dir, src, image_size=(8, 8), **kw: (
            food101.prepare(data_dir, src, image_size, **kw)),
        break_source=lambda src: _unlink(src / "texts" / "test_titles.csv",
                                         "texts/test_titles.csv"),
        corrupt_file=lambda src: _truncate(
            src / "images" / "test" / "donuts" / "donuts_0.jpg", 0.3),
        make_stale=lambda src: _append_row(
            src / "texts" / "train_titles.csv", "donuts_77.jpg,new,donuts\n"),
        # Each image size and validation fraction (in thousandths) has a
        # folder of its own; options that round to the same name are stale.
        option=({"validation_fraction": 0.0502},
                "validation_fraction = 0.05, not 0.0502")),
    Case(
        ave.Ave,
        write=_write_ave,
        prepare=lambda data_dir, src, **kw: ave.prepare(
            data_dir, src, dataclasses.replace(CLIPS, **kw)),
        break_source=lambda src: _unlink(src / "valSet.txt"),
        corrupt_file=lambda src: _garble_wav(src, _ave_test_clip(src)),
        make_stale=lambda src: _reverse_lines(src / "testSet.txt")),
    Case(
        kinetics_sounds.KineticsSounds,
        write=_write_kinetics_sounds,
        prepare=lambda data_dir, src, **kw: kinetics_sounds.prepare(
            data_dir, src, dataclasses.replace(CLIPS, **kw)),
        break_source=lambda src: _unlink(src / "my_test.txt"),
        corrupt_file=lambda src: _garble_wav(src, _ks_test_clip(src)),
        make_stale=lambda src: _reverse_lines(src / "my_test.txt")),
]
MANUAL = [c for c in CASES if c.corrupt_file is not None]
WITH_OPTIONS = [c for c in CASES if c.option is not None]
ids = lambda c: c.name


@pytest.fixture(scope="module", params=CASES, ids=ids)
def case(request):
  return request.param


def _write(case, folder: pathlib.Path) -> pathlib.Path:
  folder.mkdir(parents=True, exist_ok=True)
  return case.write(folder)


@dataclasses.dataclass(frozen=True)
class Prepared:
  data_dir: pathlib.Path
  source: pathlib.Path
  folder: pathlib.Path  # the prepared version folder
  sizes: dict  # split -> number of records


def _sizes(builder) -> dict:
  return {s: builder.info.splits[s].num_examples for s in prepare.SPLITS}


@pytest.fixture(scope="session")
def pristine(tmp_path_factory) -> Callable[[Case], Prepared]:
  """case -> its source and a dataset prepared from it, made once."""
  made = {}

  def get(case):
    if case.name not in made:
      root = tmp_path_factory.mktemp(f"{case.name}_pristine")
      source = _write(case, root / "src")
      builder = case.prepare(root / "tfds", source)
      made[case.name] = Prepared(root / "tfds", source,
                                 pathlib.Path(builder.data_dir),
                                 _sizes(builder))
    return made[case.name]
  return get


def _copy(prepared: Prepared, tmp_path) -> Prepared:
  """A copy of the prepared data dir and of the source, to damage."""
  shutil.copytree(prepared.data_dir, tmp_path / "tfds")
  shutil.copytree(prepared.source.parent, tmp_path / "src")
  return dataclasses.replace(
      prepared, data_dir=tmp_path / "tfds",
      source=tmp_path / "src" / prepared.source.name,
      folder=tmp_path / "tfds" / prepared.folder.relative_to(
          prepared.data_dir))


def _records(folder: pathlib.Path, split: str) -> pathlib.Path:
  (path,) = folder.glob(f"*-{split}.array_record-*")
  return path


def _expect_dir_error(case, data_dir, source, *fragments):
  with pytest.raises(DataError) as e:
    case.prepare(data_dir, source)
  msg = str(e.value)
  assert str(data_dir) in msg
  for f in fragments:
    assert f in msg, (f, msg)
  return msg


# --- the source is checked first; failures while preparing ------------------


def test_bad_source_refused_before_anything_is_written(case, tmp_path):
  source = _write(case, tmp_path / "src")
  fragment = case.break_source(source)
  data_dir = tmp_path / "tfds"
  with pytest.raises(DataError) as e:
    case.prepare(data_dir, source)
  assert fragment in str(e.value)
  assert not data_dir.exists()  # not even created: tfds never ran


def _disk_full_after_one_record(monkeypatch, builder_cls):
  generate = builder_cls._generate_examples  # pylint: disable=protected-access

  def failing(self, *args, **kwargs):
    for i, record in enumerate(generate(self, *args, **kwargs)):
      if i == 1:
        raise OSError(errno.ENOSPC, "No space left on device")
      yield record
  monkeypatch.setattr(builder_cls, "_generate_examples", failing)


def test_failure_while_preparing_leaves_nothing_and_a_rerun_prepares(
    case, pristine, tmp_path, monkeypatch):
  source = _write(case, tmp_path / "src")
  data_dir = tmp_path / "tfds"
  _disk_full_after_one_record(monkeypatch, case.builder_cls)
  _expect_dir_error(case, data_dir, source, "No space left on device",
                    "preparing it from", "was removed")
  assert not any(data_dir.iterdir()), list(data_dir.rglob("*"))
  monkeypatch.undo()
  assert _sizes(case.prepare(data_dir, source)) == pristine(case).sizes


@pytest.mark.parametrize("case", MANUAL, ids=ids)
def test_corrupt_source_file_found_while_preparing(case, tmp_path):
  source = _write(case, tmp_path / "src")
  damaged = case.corrupt_file(source)
  data_dir = tmp_path / "tfds"
  with pytest.raises(DataError) as e:
    case.prepare(data_dir, source)
  assert damaged in str(e.value) and "cannot be" in str(e.value)
  if case.name != "avmnist":  # one item of many: past data.max_bad_fraction
    assert prepare.MAX_BAD_KEY in str(e.value)
    assert "data.manual_dir" in str(e.value)
  # Nothing half-made is left to be refused as partial on the rerun.
  assert not (data_dir / case.name).exists()
  _write(case, tmp_path / "src")  # the user restores the file
  assert all(n > 0 for n in _sizes(case.prepare(data_dir, source)).values())


@pytest.mark.parametrize("case", MANUAL, ids=ids)
def test_prepared_dataset_needs_no_manual_dir(case, pristine):
  prepared = pristine(case)
  assert _sizes(case.prepare(prepared.data_dir, None)) == prepared.sizes


# --- the data directory ------------------------------------------------------


def test_data_dir_is_a_file(case, pristine, tmp_path):
  f = tmp_path / "file"
  f.write_text("x")
  _expect_dir_error(case, f, pristine(case).source, "not a directory")
  _expect_dir_error(case, f / "sub", pristine(case).source,
                    "not a writable directory")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root ignores permissions")
def test_data_dir_not_writable(case, pristine, tmp_path):
  d = tmp_path / "ro"
  d.mkdir()
  d.chmod(0o500)
  try:
    _expect_dir_error(case, d, pristine(case).source,
                      "not a writable directory")
  finally:
    d.chmod(0o700)


def test_partial_dataset(case, pristine, tmp_path):
  copy = _copy(pristine(case), tmp_path)
  (copy.folder / "dataset_info.json").unlink()
  _expect_dir_error(case, copy.data_dir, copy.source,
                    "holds a partial dataset (no dataset_info.json")


def test_corrupt_dataset_info(case, pristine, tmp_path):
  copy = _copy(pristine(case), tmp_path)
  (copy.folder / "dataset_info.json").write_text("{garbage")
  _expect_dir_error(case, copy.data_dir, copy.source,
                    "holds an unreadable")


# --- what was prepared: counts, records, staleness ---------------------------


def test_record_count_checked(case, pristine, tmp_path):
  copy = _copy(pristine(case), tmp_path)
  info_path = copy.folder / "dataset_info.json"
  info = json.loads(info_path.read_text())
  (split,) = [s for s in info["splits"] if s["name"] == "train"]
  n = int(split["shardLengths"][0])
  split["shardLengths"] = [str(n - 1)]
  info_path.write_text(json.dumps(info))
  _expect_dir_error(case, copy.data_dir, copy.source, "'train'",
                    f"has {n} records, its dataset_info says {n - 1}")


def test_records_read_back(case, pristine, tmp_path):
  copy = _copy(pristine(case), tmp_path)
  # Damage the first record's chunk: the file's index (at its end) and so
  # its record count stay intact; only reading the record finds it.
  path = _records(copy.folder, "validation")
  data = bytearray(path.read_bytes())
  data[100:116] = bytes(b ^ 0xFF for b in data[100:116])
  path.write_bytes(bytes(data))
  _expect_dir_error(case, copy.data_dir, copy.source, "'validation'",
                    "cannot be read")


def test_truncated_and_missing_record_files(case, pristine, tmp_path):
  copy = _copy(pristine(case), tmp_path / "a")
  path = _records(copy.folder, "test")
  path.write_bytes(path.read_bytes()[:100])
  _expect_dir_error(case, copy.data_dir, copy.source, "'test'",
                    "cannot be read")
  copy = _copy(pristine(case), tmp_path / "b")
  _records(copy.folder, "validation").unlink()
  _expect_dir_error(case, copy.data_dir, copy.source, "'validation'",
                    "cannot be read")


def test_stale_source_refused(case, pristine, tmp_path):
  copy = _copy(pristine(case), tmp_path)
  case.prepare(copy.data_dir, copy.source)  # the same source: reused
  case.make_stale(copy.source)
  _expect_dir_error(case, copy.data_dir, copy.source, "so it is stale",
                    str(copy.source))


@pytest.mark.parametrize("case", WITH_OPTIONS, ids=ids)
def test_other_options_refused_as_stale(case, pristine):
  options, fragment = case.option
  prepared = pristine(case)
  with pytest.raises(DataError) as e:
    case.prepare(prepared.data_dir, prepared.source, **options)
  assert "so it is stale" in str(e.value) and fragment in str(e.value)
  assert str(prepared.data_dir) in str(e.value)


# --- the shared pieces --------------------------------------------------------


def test_each_builder_names_its_own_file_as_code_path():
  for c in CASES:
    module = c.builder_cls.__module__.rsplit(".", 1)[1]
    assert c.builder_cls.code_path.name == f"{module}.py"
    assert c.builder_cls.code_path.is_file()


# --- prepared datasets named by what shapes their records --------------------

IMAGE_TEXT = [c for c in CASES if c.name in ("mmimdb", "upmc_food101")]


def _mtimes(folder: pathlib.Path) -> dict:
  return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", IMAGE_TEXT, ids=ids)
def test_image_sizes_coexist_in_one_data_dir(case, tmp_path):
  source = _write(case, tmp_path / "src")
  data_dir = tmp_path / "tfds"
  first = case.prepare(data_dir, source, image_size=(16, 16))
  before = _mtimes(pathlib.Path(first.data_dir))
  second = case.prepare(data_dir, source, image_size=(24, 24))
  assert first.data_dir != second.data_dir
  assert _mtimes(pathlib.Path(first.data_dir)) == before  # not rewritten
  for size in ((16, 16), (24, 24)):  # both load, each with its own shape
    builder = case.prepare(data_dir, source, image_size=size)
    assert builder.builder_config.name.startswith(f"s{size[0]}x{size[1]}")
    for split in prepare.SPLITS:
      records = builder.as_data_source(split)
      assert records[0]["image"].shape == size + (3,)
  assert _mtimes(pathlib.Path(first.data_dir)) == before


@pytest.mark.parametrize("case", IMAGE_TEXT, ids=ids)
def test_default_shape_keeps_the_unnamed_folder(case, tmp_path):
  """The defaults are prepared where the code before config names put them
  (<name>/<version>/), so those datasets are still found; one that code
  prepared at another size there is refused before any read, saying so."""
  source = _write(case, tmp_path / "src")
  data_dir = tmp_path / "tfds"
  default = case.builder_cls.IMAGE_SIZE
  builder = case.prepare(data_dir, source, image_size=default)
  folder = data_dir / case.name / str(case.builder_cls.VERSION)
  assert pathlib.Path(builder.data_dir) == folder
  assert builder.builder_config is None
  # As the old code left it after a `:small` run: 32 x 32 in that folder.
  meta_path = folder / "metadata.json"
  meta = json.loads(meta_path.read_text())
  meta["image_size"] = [32, 32]
  meta_path.write_text(json.dumps(meta))
  with pytest.raises(DataError) as e:
    case.prepare(data_dir, source, image_size=default)
  msg = str(e.value)
  for fragment in (str(folder), "so it is stale", "older version",
                   f"image_size = [32, 32], not {list(default)}", "delete"):
    assert fragment in msg, (fragment, msg)
  assert "\n" not in msg
  # 32 x 32 now has its own folder: prepared beside it, not refused.
  small = case.prepare(data_dir, source, image_size=(32, 32))
  assert pathlib.Path(small.data_dir).parent.parent == data_dir / case.name


# --- unreadable items of the user's files ------------------------------------


def _corrupt_poster(src):
  path = _a_test_poster(src)
  _truncate(path, 0.3)
  return "test", f"dataset/{path.name}", 1


def _malformed_movie_json(src):
  path = _a_test_poster(src).with_suffix(".json")
  path.write_text('{"plot": ["unterminated')
  return "test", f"dataset/{path.name}", 1


def _corrupt_food_photo(src):
  _truncate(src / "images" / "test" / "donuts" / "donuts_0.jpg", 0.3)
  return "test", "images/test/donuts/donuts_0.jpg", 1


def _malformed_food_row(src):
  path = src / "texts" / "test_titles.csv"
  n = len(path.read_text(encoding="utf-8").splitlines())
  _append_row(path, "only_a_filename.jpg\n")
  return "test", f"texts/test_titles.csv:{n + 1}", 0  # never was a record


def _garbled_wav_of(clip):
  def damage(src):
    clip_id = clip(src)
    _garble_wav(src, clip_id)
    return "test", f"audio/{clip_id}.wav", 1
  return damage


def _corrupt_frame_of(clip):
  def damage(src):
    clip_id = clip(src)
    _truncate(src / "frames" / clip_id / "00.jpg", 0.3)  # a picked frame
    return "test", f"frames/{clip_id}/00.jpg", 1
  return damage


_BY_NAME = {c.name: c for c in CASES}
BAD_ITEMS = [
    ("mmimdb", _corrupt_poster), ("mmimdb", _malformed_movie_json),
    ("upmc_food101", _corrupt_food_photo),
    ("upmc_food101", _malformed_food_row),
    ("ave", _garbled_wav_of(_ave_test_clip)),
    ("ave", _corrupt_frame_of(_ave_test_clip)),
    ("kinetics_sounds", _garbled_wav_of(_ks_test_clip)),
]
bad_ids = [f"{n}-{d.__name__.strip('_')}" for n, d in BAD_ITEMS]


@pytest.mark.parametrize("name,damage", BAD_ITEMS, ids=bad_ids)
def test_an_unreadable_item_is_skipped_and_named(name, damage, pristine,
                                                 tmp_path, caplog):
  case = _BY_NAME[name]
  source = _write(case, tmp_path / "src")
  split, bad_file, lost = damage(source)
  data_dir = tmp_path / "tfds"
  with caplog.at_level(logging.WARNING):
    builder = case.prepare(data_dir, source, max_bad_fraction=0.5)
  assert bad_file in caplog.text and "cannot be read" in caplog.text
  want = dict(pristine(case).sizes)
  want[split] -= lost
  assert _sizes(builder) == want
  # Recorded in the prepared dataset's metadata (read back from disk).
  reread = case.prepare(data_dir, source, max_bad_fraction=0.5)
  bad = reread.info.metadata["bad_items"]
  assert bad[split]["files"] == [bad_file] and bad[split]["count"] == 1
  assert all(bad[s]["count"] == 0 for s in prepare.SPLITS if s != split)
  assert reread.info.metadata["max_bad_fraction"] == 0.5


@pytest.mark.parametrize("name,damage", BAD_ITEMS, ids=bad_ids)
def test_unreadable_items_past_the_threshold_stop_preparation(
    name, damage, tmp_path):
  case = _BY_NAME[name]
  source = _write(case, tmp_path / "src")
  _, bad_file, _ = damage(source)
  data_dir = tmp_path / "tfds"
  with pytest.raises(DataError) as e:  # 0: below one item of any split
    case.prepare(data_dir, source, max_bad_fraction=0.0)
  msg = str(e.value)
  assert str(source / bad_file) in msg and "data.max_bad_fraction" in msg
  assert "data.manual_dir" in msg and str(data_dir) not in msg
  assert "\n" not in msg
  assert not (data_dir / case.name).exists()  # nothing half-made is left


@pytest.mark.parametrize("case", IMAGE_TEXT + [_BY_NAME["ave"]], ids=ids)
def test_max_bad_fraction_must_be_a_fraction(case, tmp_path):
  source = _write(case, tmp_path / "src")
  with pytest.raises(DataError, match="data.max_bad_fraction = 1.5"):
    case.prepare(tmp_path / "tfds", source, max_bad_fraction=1.5)
  assert not (tmp_path / "tfds").exists()
