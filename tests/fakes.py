"""The one fakes module of the test suite: tiny specs, configs, batches and
fake datasets in the real on-disk formats.

- core pieces: ``SPEC``, ``tiny_config``, ``batch``;
- avdigits-format assets: ``make_arrays`` / ``write_asset`` (index readable
  back from each example, ``ids_from_image``) and ``make_learnable_asset``
  (class prototypes + noise, so scores move with training);
- one section per other dataset, each writing that dataset's real on-disk
  source into a folder: ``write_clipart_asset``, ``write_avmnist``,
  ``write_mmimdb_raw`` / ``write_mmimdb_hdf5``, ``write_food101``,
  ``write_clip`` / ``write_ave`` / ``write_kinetics_sounds``. Labels are
  learnable from the inputs, so the end-to-end runs have signal.
"""
import csv
import glob
import json
import os
import pathlib

import jax
import numpy as np
from PIL import Image

from ume_jax import methods
from ume_jax.config import common
from ume_jax.data import DatasetSpec
from ume_jax.missing.masking import MaskingSpec

SPLITS = ("train", "validation", "test")

SPEC = DatasetSpec(
    name="tiny", modalities=("image", "audio"),
    input_shapes={"image": (8, 8, 1), "audio": (12, 8, 1)}, num_classes=4,
    multilabel=False, split_sizes={"train": 64, "validation": 16, "test": 16})


def tiny_config():
  c = common.base()
  small = {"channels": (8, 16), "strides": (2, 2), "feature_dim": 32}
  for m in ("image", "audio"):
    c.model.encoders[m].kwargs = dict(small)
  c.pretrain.num_epochs = 1
  c.pretrain.batch_size = 16
  return c


# Image + text on tiny transformer towers (CLIP's two, random weights):
# what the prompts baseline needs (``ume_jax/models/prompts.py``).
TOWER_SPEC = DatasetSpec(
    name="tiny_towers", modalities=("image", "text"),
    input_shapes={"image": (16, 16, 3), "text": (10,)}, num_classes=4,
    multilabel=False, split_sizes={"train": 64, "validation": 16, "test": 16},
    input_dtypes={"text": "int32"})
TOWER_EOS = 49


def tiny_tower_config():
  """``tiny_config`` on ``TOWER_SPEC``'s two 2-layer, 32-wide towers, 3
  prompt tokens in both layers."""
  c = tiny_config()
  shared = dict(width=32, depth=2, heads=4, mlp_dim=64, projection_dim=8)
  c.model.encoders = {
      "image": common.encoder("clip_vision", dict(image_size=16,
                                                  patch_size=8, **shared)),
      "text": common.encoder("clip_text", dict(
          vocab_size=50, max_positions=16, max_len=10,
          eos_token_id=TOWER_EOS, **shared))}
  common.set_modalities(c, TOWER_SPEC.modalities)
  c.prompts.update(dict(length=3, depth=2))
  return c


def tower_batch(size=16, seed=0, present=None):
  """A ``TOWER_SPEC`` batch: random images, texts ending in TOWER_EOS then
  padding; ``present`` (size, 2) bool, default all present."""
  rng = np.random.default_rng(seed)
  ids = rng.integers(1, 45, size=(size, 10))
  ids[:, 7], ids[:, 8:] = TOWER_EOS, 0
  return {"image": rng.normal(size=(size, 16, 16, 3)).astype(np.float32),
          "text": ids.astype(np.int32),
          "label": rng.integers(0, 4, size).astype(np.int32),
          "present": (np.ones((size, 2), bool) if present is None
                      else np.asarray(present, bool))}


def unimodal(config, spec, m, means=None):
  """``methods.unimodal`` for a whole test config."""
  return methods.unimodal(config.model, spec, m, MaskingSpec.from_config(
      config, spec, means))


def fusion(config, spec, name, means=None):
  """``methods.fusion`` for a whole test config."""
  return methods.fusion(config.model, spec, name, MaskingSpec.from_config(
      config, spec, means), prompt_cfg=config.get("prompts"))


def batch(size=16, seed=0, spec=SPEC, with_eval_keys=False):
  rng = np.random.default_rng(seed)
  b = {m: rng.normal(size=(size,) + spec.input_shapes[m]).astype(np.float32)
       for m in spec.modalities}
  b["label"] = rng.integers(0, spec.num_classes, size).astype(np.int32)
  b["present"] = np.ones((size, len(spec.modalities)), bool)
  if with_eval_keys:
    b["valid"] = np.ones(size, bool)
    b["index"] = np.arange(size, dtype=np.int32)
  return b


class InMemoryDataset:
  """A dataset of random inputs in memory, with ``eval_batches`` as the
  pipeline's: global batch b holds indices [b G, (b + 1) G); padding has
  valid False, index -1, zero inputs, label 0, present True. Every 4th
  example lacks the second modality in the data itself."""

  def __init__(self, spec, seed=0):
    self.spec = spec
    rng = np.random.default_rng(seed)
    self.arrays = {}
    for split, n in spec.split_sizes.items():
      a = {m: rng.normal(size=(n,) + spec.input_shapes[m]).astype(np.float32)
           for m in spec.modalities}
      a["label"] = rng.integers(0, spec.num_classes, n).astype(np.int32)
      a["present"] = np.ones((n, len(spec.modalities)), bool)
      a["present"][::4, 1] = False  # every 4th example has no audio
      self.arrays[split] = a

  def eval_batches(self, split, global_batch_size, sharding):
    a = self.arrays[split]
    n = self.spec.split_sizes[split]
    for start in range(0, n, global_batch_size):
      pos = start + np.arange(global_batch_size)
      valid = pos < n
      take = np.where(valid, pos, 0)
      b = {k: np.where(valid.reshape((-1,) + (1,) * (v.ndim - 1)), v[take],
                       np.ones_like(v[take]) if k == "present"
                       else np.zeros_like(v[take]))
           for k, v in a.items()}
      b["valid"] = valid
      b["index"] = np.where(valid, pos, -1).astype(np.int32)
      yield jax.device_put(b, sharding)


def tensorboard_scalars(logdir):
  """{(tag, step): [values]} over every events file in ``logdir``, and the
  files."""
  from tensorboardX.proto import event_pb2
  from ume_jax.infra import logs
  files = sorted(glob.glob(os.path.join(logdir, logs.EVENTS_GLOB)))
  found = {}
  for path in files:
    for data in logs._records(path):  # pylint: disable=protected-access
      event = event_pb2.Event.FromString(data)
      for v in event.summary.value:
        found.setdefault((v.tag, event.step), []).append(v.simple_value)
  return found, files


def make_learnable_asset(path, sizes=None, seed=0, audio_noise=1.6):
  sizes = sizes or {"train": 320, "validation": 80, "test": 120}
  rng = np.random.default_rng(seed)
  protos = {"image": rng.normal(size=(10, 28, 28)),
            "audio": rng.normal(size=(10, 40, 40))}
  noise = {"image": 0.8, "audio": audio_noise}
  arrays = {}
  for s in SPLITS:
    n = sizes[s]
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    for m in ("image", "audio"):
      x = protos[m][labels] + noise[m] * rng.normal(size=(n,) + protos[m].shape[1:])
      arrays[f"{m}_{s}"] = np.clip(128 + 40 * x, 0, 255).astype(np.uint8)
    arrays[f"label_{s}"] = labels.astype(np.uint8)
    arrays[f"voice_{s}"] = np.zeros(n, np.int16)
  meta = {"name": "avdigits", "version": "1.0.0", "seed": seed,
          "splits": {s: {"num_examples": sizes[s]} for s in SPLITS}}
  arrays["meta"] = np.array(json.dumps(meta))
  np.savez(path, **arrays)
  return str(path)


SIZES = {"train": 50, "validation": 20, "test": 30}


def make_arrays(sizes=None, seed=0) -> dict:
  """Fake asset arrays; example i of a split has image[0,0]=i%256,
  image[0,1]=i//256 and voice=i, so an example's index can be read back."""
  sizes = sizes or SIZES
  rng = np.random.default_rng(seed)
  d = {}
  for s in SPLITS:
    n = sizes[s]
    image = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    image[:, 0, 0] = np.arange(n) % 256
    image[:, 0, 1] = np.arange(n) // 256
    d[f"image_{s}"] = image
    d[f"audio_{s}"] = rng.integers(0, 256, (n, 40, 40), dtype=np.uint8)
    d[f"label_{s}"] = rng.integers(0, 10, (n,), dtype=np.uint8)
    d[f"voice_{s}"] = np.arange(n, dtype=np.int16)
  meta = {"name": "avdigits", "version": "1.0.0", "seed": seed,
          "splits": {s: {"num_examples": sizes[s]} for s in SPLITS}}
  d["meta"] = np.array(json.dumps(meta))
  return d


def write_asset(path, arrays=None):
  arrays = make_arrays() if arrays is None else arrays
  np.savez(path, **arrays)
  return path


def ids_from_image(image) -> np.ndarray:
  """Example indices from standardised (unaugmented) image batch (B,28,28,1)."""
  from ume_jax.data.datasets import avdigits  # pylint: disable=g-import-not-at-top
  mean, std = avdigits.STATS["image"]
  px = np.rint((np.asarray(image)[:, 0, :2, 0] * std + mean) * 255)
  return (px[:, 0] + 256 * px[:, 1]).astype(np.int64)


# --- clipart: the packaged asset's format (scripts/make_clipart.py) ---------


def write_clipart_asset(path, sizes=(6, 2, 3), seed=0):
  """A tiny clipart.npz: ``sizes`` drawings per split, random 32x32 RGB."""
  from ume_jax.data.datasets import clipart  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  n = sum(sizes)
  label = (np.arange(n) % len(clipart.CLASSES)).astype(np.uint8)
  records = [{"title": f"drawing {i}", "keywords": [f"kw{i % 5}", "line art"],
              "file": f"{clipart.CLASSES[c]}/drawing_{i}.svg"}
             for i, c in enumerate(label)]
  meta = {"name": "clipart", "version": clipart.VERSION, "seed": seed,
          "classes": list(clipart.CLASSES)}
  np.savez(path, image=rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
           label=label, split=np.repeat(np.arange(3), sizes).astype(np.uint8),
           text=np.frombuffer(json.dumps(records).encode(), np.uint8),
           meta=np.array(json.dumps(meta)))
  return pathlib.Path(path)


# --- avmnist: MultiBench's avmnist folder -----------------------------------

AVMNIST_N_TRAIN, AVMNIST_N_TEST, AVMNIST_VALIDATION = 300, 100, 60
AVMNIST_FILES = ["image/train_data.npy", "image/test_data.npy",
                 "audio/train_data.npy", "audio/test_data.npy",
                 "train_labels.npy", "test_labels.npy"]


def write_avmnist(root, image_scale=1.0, n_train=AVMNIST_N_TRAIN,
                  n_test=AVMNIST_N_TEST):
  """Learnable miniature AV-MNIST: the label sets a bright image row and a
  loud audio band, plus noise. Returns the arrays written."""
  root = pathlib.Path(root)
  rng = np.random.default_rng(0)
  arrays = {}
  for split, n in (("train", n_train), ("test", n_test)):
    y = rng.integers(0, 10, n).astype(np.int64)
    img = rng.random((n, 28, 28), dtype=np.float32) * 0.3
    aud = rng.normal(-40.0, 5.0, (n, 112, 112)).astype(np.float32)
    for i, c in enumerate(y):
      img[i, 2 + 2 * c] = 1.0
      aud[i, :, 10 * c:10 * c + 10] += 30.0
    img = (img * image_scale).reshape(n, 784)
    arrays[split] = dict(image=img, audio=aud, label=y)
    os.makedirs(root / "image", exist_ok=True)
    os.makedirs(root / "audio", exist_ok=True)
    np.save(root / "image" / f"{split}_data.npy", img)
    np.save(root / "audio" / f"{split}_data.npy", aud)
    np.save(root / f"{split}_labels.npy", y)
  return arrays


# --- mmimdb: the raw archive's form and MultiBench's hdf5 form --------------

MMIMDB_N = 60
MMIMDB_WORDS = ("love war space murder family ship ghost city king song dream"
                " race detective island winter robot").split()


def mmimdb_ids(n=MMIMDB_N):
  return [f"{i:07d}" for i in range(1, n + 1)]


def mmimdb_movie(i):
  """Movie i's json (two plots, genres) and poster (its colour encodes the
  first genre, so labels are learnable from images)."""
  from ume_jax.data.datasets import mmimdb  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(i)
  genres = sorted({mmimdb.GENRES[j] for j in rng.integers(0, 23, 2)})
  g = mmimdb.GENRES.index(genres[0])
  plot = " ".join([MMIMDB_WORDS[g % len(MMIMDB_WORDS)]] * 3
                  + list(rng.choice(MMIMDB_WORDS, 10))) + ", \"quoted\" é."
  image = np.full((60, 40, 3), (g * 11) % 256, np.uint8)
  image[:, :, 1] = rng.integers(0, 256, (60, 40), dtype=np.uint8)
  return {"plot": [plot, "a second plot, ignored"], "genres": genres,
          "title": f"Movie {i}"}, image


def write_mmimdb_raw(root, layout="dataset", n=MMIMDB_N):
  """split.json (train / dev / test: 60% / 13% / the rest) and, per movie,
  {id}.json + {id}.jpeg in dataset/ or (layout "map") images/ + labels/."""
  root = pathlib.Path(root)
  img_dir, json_dir = {"dataset": ("dataset", "dataset"),
                       "map": ("images", "labels")}[layout]
  os.makedirs(root / img_dir, exist_ok=True)
  os.makedirs(root / json_dir, exist_ok=True)
  ids = mmimdb_ids(n)
  for i, movie in enumerate(ids):
    meta, image = mmimdb_movie(i)
    (root / json_dir / f"{movie}.json").write_text(json.dumps(meta))
    Image.fromarray(image).save(root / img_dir / f"{movie}.jpeg", quality=95)
  a, b = n * 36 // 60, n * 44 // 60
  (root / "split.json").write_text(json.dumps(
      {"train": ids[:a], "dev": ids[a:b], "test": ids[b:]}))
  return root


def write_mmimdb_hdf5(root, n=MMIMDB_N):
  """multimodal_imdb.hdf5 (no plots) plus the {id}.json plots in dataset/."""
  import h5py  # pylint: disable=g-import-not-at-top
  from ume_jax.data.datasets import mmimdb  # pylint: disable=g-import-not-at-top
  root = pathlib.Path(root)
  os.makedirs(root / "dataset", exist_ok=True)
  images, genres = [], []
  ids = mmimdb_ids(n)
  for i, movie in enumerate(ids):
    meta, image = mmimdb_movie(i)
    (root / "dataset" / f"{movie}.json").write_text(json.dumps(meta))
    images.append(np.array(Image.fromarray(image).resize((160, 256)))
                  .transpose(2, 0, 1))
    genres.append([g in meta["genres"] for g in mmimdb.GENRES])
  with h5py.File(root / mmimdb.HDF5, "w") as f:
    f["images"] = np.stack(images)
    f["genres"] = np.asarray(genres, np.int8)
    f["imdb_ids"] = np.array([m.encode() for m in ids])
    f["features"] = np.zeros((n, 300), np.float32)  # present, unused
  return root


# --- food101: UPMC Food-101's images/ + texts/ folders ----------------------

FOOD_CLASSES = ["apple_pie", "baby_back_ribs", "caesar_salad", "donuts"]
FOOD_N_TRAIN, FOOD_N_TEST = 10, 4  # rows per class


def food_title(c, n):
  # Commas, quotes and non-ASCII, as on real web-page titles.
  return f'{FOOD_CLASSES[c].replace("_", " ")} recipe #{n}, "best" - café'


def write_food101(root, n_train=FOOD_N_TRAIN, n_test=FOOD_N_TEST):
  """Per class n_train / n_test photos (colour encodes the class) and their
  CSV rows, plus one row per CSV whose image is missing."""
  root = pathlib.Path(root)
  rng = np.random.default_rng(0)
  for split, n in (("train", n_train), ("test", n_test)):
    rows = []
    for c, name in enumerate(FOOD_CLASSES):
      os.makedirs(root / "images" / split / name, exist_ok=True)
      for k in range(n):
        image = np.full((24, 30, 3), 40 + 50 * c, np.uint8)
        image[..., 2] = rng.integers(0, 256, (24, 30), dtype=np.uint8)
        Image.fromarray(image).save(
            root / "images" / split / name / f"{name}_{k}.jpg", quality=95)
        rows.append([f"{name}_{k}.jpg", food_title(c, k), name])
    rows.append([f"{FOOD_CLASSES[0]}_999.jpg", "image missing",
                 FOOD_CLASSES[0]])
    os.makedirs(root / "texts", exist_ok=True)
    with open(root / "texts" / f"{split}_titles.csv", "w", newline="",
              encoding="utf-8") as f:
      csv.writer(f).writerows(rows)
  return root


# --- ave, kinetics_sounds: scripts/extract_av_clips.py's output -------------

CLIP_OPTIONS = dict(num_frames=2, image_size=16, n_mels=16, audio_frames=24)
AVE_CATEGORIES = ["Bark", "Church bell", "Violin", "Banjo"]


def write_clip(root, clip_id: str, label: int, n_frames=3):
  """Frames whose colour and a wav whose pitch depend on the label."""
  from scipy.io import wavfile  # pylint: disable=g-import-not-at-top
  root = pathlib.Path(root)
  d = root / "frames" / clip_id
  d.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(abs(hash(clip_id)) % 2**32)
  for i in range(n_frames):
    px = np.full((20, 24, 3), 40 * label + 20, np.uint8)
    px = np.clip(px + rng.integers(0, 20, px.shape), 0, 255).astype(np.uint8)
    Image.fromarray(px).save(d / f"{i:02d}.jpg")
  t = np.arange(4000) / 16000
  wave = 0.5 * np.sin(2 * np.pi * 300 * (label + 1) * t)
  (root / "audio").mkdir(exist_ok=True)
  wavfile.write(root / "audio" / f"{clip_id}.wav", 16000,
                (wave * 32767).astype(np.int16))


def write_ave(root, sizes=(24, 8, 8)) -> dict:
  """AVE's list files and clips (~40 at the default sizes); one video holds
  two events (two clips of one video id). Returns {list name: clip ids}."""
  root = pathlib.Path(root)
  root.mkdir(parents=True, exist_ok=True)
  header = "Category&VideoID&Quality&StartTime&EndTime\n"
  lines, ids = {}, {}
  k = 0
  for split, n in zip(("trainSet", "valSet", "testSet"), sizes):
    rows = []
    for _ in range(n):
      label = k % len(AVE_CATEGORIES)
      vid = f"vid{k // 2:08d}_x"  # 11 chars like YouTube ids; pairs share it
      start = 0 if k % 2 == 0 else 5
      rows.append(f"{AVE_CATEGORIES[label]}&{vid}&good&{start}&{start + 5}")
      write_clip(root, f"{vid}_{start}_{start + 5}", label)
      ids.setdefault(split, []).append(f"{vid}_{start}_{start + 5}")
      k += 1
    lines[split] = rows
    (root / f"{split}.txt").write_text("\n".join(rows) + "\n")
  all_rows = sum(lines.values(), [])
  (root / "Annotations.txt").write_text(header + "\n".join(all_rows) + "\n")
  return ids


def write_kinetics_sounds(root, n_train=32, n_test=8, labels=(0, 7, 30)):
  """OGM-GE lines `<ytid>_<start>,10,<class>`; some ids contain `_` / `-`."""
  root = pathlib.Path(root)
  root.mkdir(parents=True, exist_ok=True)
  for name, n, off in (("my_train.txt", n_train, 0),
                       ("my_test.txt", n_test, n_train)):
    rows = []
    for i in range(off, off + n):
      clip_id = f"-a_{i:08d}_{i * 3}"  # 11-char id, then the start second
      label = labels[i % len(labels)]
      write_clip(root, clip_id, labels.index(label))
      rows.append(f"{clip_id},10,{label}")
    (root / name).write_text("\n".join(rows) + "\n")


# --- end-to-end: a dataset's `:small` config cut down to its fakes ----------

METHODS = ("ume", "late_fusion", "late_fusion_pretrained", "mma", "ume_mma",
           "best_per_pattern")


def all_methods(modalities) -> set:
  """The result rows of a whole run: each uni-modal model and METHODS."""
  return {f"unimodal:{m}" for m in modalities} | set(METHODS)


def tiny_clip_job(c, manual_dir, data_dir):
  """An AVE / Kinetics-Sounds `:small` config on the clip fakes, 5 steps a
  stage. Tiny encoders keep compile time down: a one-stage ResNet for the
  frames (still the real per-frame + temporal-mean path), a 2-conv CNN for
  audio."""
  c.data.update(dict(manual_dir=str(manual_dir), data_dir=str(data_dir),
                     **CLIP_OPTIONS))
  c.model.encoders.visual.kwargs = dict(widths=(4,), blocks=(1,),
                                        feature_dim=8)
  c.model.encoders.audio = dict(name="audio_cnn", kwargs=dict(
      channels=(4,), strides=(4,), feature_dim=8))
  c.eval.missing_rates = (1.0,)
  common.update_stages(c, num_steps=5, batch_size=8,
                       optim_values={"warmup_steps": 1})
  c.eval.batch_size = 16
  c.checkpoint.every_steps = 5
  return c


def tiny_image_text_job(c, manual_dir, data_dir, vocab_size, max_len):
  """An MM-IMDB / Food-101 `:small` config on their fakes: 16x16 images,
  tiny encoders, 5 steps a stage."""
  c.data.update(dict(data_dir=str(data_dir), manual_dir=str(manual_dir),
                     image_size=(16, 16), vocab_size=vocab_size,
                     max_len=max_len))
  c.model.encoders.image.kwargs = dict(channels=(4,), strides=(4,),
                                       feature_dim=8)
  c.model.encoders.text.kwargs = dict(vocab_size=vocab_size, max_len=max_len,
                                      width=16, depth=1, heads=2, mlp_dim=16,
                                      feature_dim=8)
  common.update_stages(c, num_steps=5, batch_size=8)
  c.eval.batch_size = 16
  # The headline rate only (with :map: text, image and both at 70%).
  c.eval.missing_rates = (0.7,) if c.eval.missing_types else ()
  c.checkpoint.asynchronous = False
  return c


# A CLIP snapshot of tiny random towers, made by transformers
# (scripts/make_hf_fixtures.py): vision 48 wide, text 32, 2 layers each.
CLIP_TINY = os.path.join(os.path.dirname(__file__), "fixtures", "hf",
                         "clip_tiny")


def tiny_clip_towers_job(c, manual_dir, data_dir):
  """An MM-IMDB / Food-101 `:clip,small` config on their fakes, the towers
  from CLIP_TINY: 5 steps a stage, the headline rate only."""
  c.hf_snapshot = CLIP_TINY
  c.data.update(dict(data_dir=str(data_dir), manual_dir=str(manual_dir)))
  common.update_stages(c, num_steps=5, batch_size=8)
  c.eval.batch_size = 16
  c.eval.missing_rates = (0.7,)
  c.checkpoint.asynchronous = False
  return c


MAP_SCENARIOS = {"full", "missing:image", "missing:text",
                 "missing_rate:text:0.7", "missing_rate:image:0.7",
                 "missing_rate:both:0.7"}


def check_map_protocol_run(workdir, methods_run=("mma",)):
  """A `:map` run's results: every method of ``methods_run`` scored in
  every MAP scenario, trained on 70% `both` missing (exact counts), and
  results.md has the missing-aware-prompts table at 70%."""
  with open(os.path.join(workdir, "results.json")) as f:
    results = json.load(f)
  for name in methods_run:
    assert set(results["methods"].get(name, ())) == MAP_SCENARIOS, name
  protocol = results["protocol"]
  assert protocol["train_missing"] == {"type": "both", "ratio": 0.7,
                                       "seed": 7}
  n_train = protocol["split_sizes"]["train"]
  lacking = int(0.7 * n_train + 0.5)   # round half up, as the protocol
  assert sorted(round((1 - f) * n_train)
                for f in protocol["train_present_fraction"].values()) == [
                    lacking // 2, lacking - lacking // 2]
  with open(os.path.join(workdir, "results.md")) as f:
    text = f.read()
  assert "## Missing-aware-prompts layout (η = 70%" in text
  rows = [l for l in text.splitlines()
          if l.split("|")[1:2] and l.split("|")[1].strip() in (
              "text 70%", "image 70%", "both 70%")]
  assert len(rows) == 3
  return results


# --- Hugging Face snapshot front ends: tokenizer.json, preprocessor_config ---

SNAPSHOT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")  # ids 0..3


def snapshot_words() -> list:
  """The words of the mmimdb and food101 fakes' texts (and letters), so a
  snapshot tokenizer made from them gives few [UNK]s on those texts."""
  words = set(MMIMDB_WORDS) | {"a", "second", "plot", "ignored", "quoted",
                               "recipe", "best", "cafe", "image", "missing"}
  for c in FOOD_CLASSES:
    words |= set(c.split("_"))
  return sorted(words) + [chr(c) for c in range(ord("a"), ord("z") + 1)]


def write_wordpiece_tokenizer_json(folder, words=None, padding=None
                                   ) -> pathlib.Path:
  """A BERT-style ``folder/tokenizer.json`` made with the tokenizers
  library: [PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3, then ``words`` and their
  "##" forms; lowercase; post-processor ``[CLS] $A [SEP]``. ``padding``
  (e.g. ``dict(length=40, pad_id=3)``) saves a padding setting in it, as
  some snapshots have."""
  # pylint: disable=g-import-not-at-top
  import tokenizers
  from tokenizers import models, normalizers, pre_tokenizers, processors
  # pylint: enable=g-import-not-at-top
  words = list(words or snapshot_words())
  vocab = list(SNAPSHOT_SPECIALS) + [".", ",", "#", '"', "-"]
  vocab += [w for w in words if w not in vocab]
  vocab += ["##" + w for w in words if "##" + w not in vocab]
  tok = tokenizers.Tokenizer(models.WordPiece(
      {t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
  tok.normalizer = normalizers.BertNormalizer(lowercase=True,
                                              strip_accents=True)
  tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
  tok.post_processor = processors.TemplateProcessing(
      single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
      special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
  if padding:
    tok.enable_padding(**padding)
  folder = pathlib.Path(folder)
  folder.mkdir(parents=True, exist_ok=True)
  tok.save(os.fspath(folder / "tokenizer.json"))
  return folder / "tokenizer.json"


def write_processor_config(folder, **keys) -> pathlib.Path:
  """``folder/preprocessor_config.json`` as transformers' CLIPImageProcessor
  writes it: shortest edge 24, centre crop 24 x 24, bicubic, and a mean /
  std unlike ImageNet's; ``keys`` replace or add keys (None removes)."""
  cfg = {"crop_size": {"height": 24, "width": 24}, "do_center_crop": True,
         "do_convert_rgb": True, "do_normalize": True, "do_rescale": True,
         "do_resize": True, "image_mean": [0.1, 0.2, 0.3],
         "image_processor_type": "CLIPImageProcessor",
         "image_std": [0.5, 0.25, 0.125], "resample": 3,
         "rescale_factor": 1 / 255, "size": {"shortest_edge": 24}}
  for k, v in keys.items():
    if v is None:
      cfg.pop(k, None)
    else:
      cfg[k] = v
  folder = pathlib.Path(folder)
  folder.mkdir(parents=True, exist_ok=True)
  (folder / "preprocessor_config.json").write_text(json.dumps(cfg, indent=2))
  return folder / "preprocessor_config.json"


def train_steps(method, config, section, batches):
  """``method``'s jitted, sharded train step (as ``trainer`` runs it, on
  ``config.mesh`` with the ``section``'s optimiser) over ``batches`` from a
  fresh state: (params before, params after, the last step's scalars)."""
  from ume_jax.infra import mesh as mesh_lib
  from ume_jax.train import optim, seeds, trainer
  mesh = mesh_lib.build_mesh(config.mesh)
  tx = optim.make_optimizer(trainer.optim_config(method, section),
                            len(batches) + 2)
  init_fn, state_sh = trainer.plan_state(method, tx, mesh)
  state = init_fn(seeds.init_key(0))
  before = jax.device_get(state.params)
  step = trainer.jit_train_step(
      method, tx, section, state_sh, mesh_lib.batch_sharding(mesh), mesh,
      multilabel=False, seed=0)
  scalars = None
  for batch in batches:
    state, scalars = step(state, batch)
  return before, jax.device_get(state.params), jax.device_get(scalars)
