#!/usr/bin/env python3
"""Build ``ume_jax/data/assets/clipart.npz``: openclipart drawings + their own text.

A small vision-language classification set made of real material: the
drawings of the Debian packages ``openclipart-png`` and ``openclipart-svg``
(version 1:0.18+dfsg-19, openclipart.org 0.18, dedicated to the public domain
under the Creative Commons Public Domain Dedication, see the packages'
``copyright`` files), each with the title and keywords its author gave it.
The label is the drawing's category: the top-level folder of the png package
(animals, computer, food, ...).

How to run (generation time only; the project itself never downloads)::

    .venv/bin/python scripts/make_clipart.py                 # apt-get download
    .venv/bin/python scripts/make_clipart.py --debs /tmp/dl  # .debs at hand
    .venv/bin/python scripts/make_clipart.py --baselines     # + print baselines

Without ``--debs`` it runs ``apt-get download openclipart-png=1:0.18+dfsg-19
openclipart-svg=1:0.18+dfsg-19`` (no root needed; needs Debian/Ubuntu apt
sources that carry that version) in a temporary directory, then ``dpkg-deb
-x`` both packages there; the temporary directory is removed afterwards.
Needs numpy, Pillow, (``--baselines``) scipy and the installed ``ume_jax``,
and ~5 GB of memory: a few PNGs are 20,000 x 30,000 pixels. Takes ~2.5
minutes (+2 for baselines) on 2 cores. Reruns give a byte-identical file (sorted file walk, one seeded generator, fixed zip
timestamps; the rendering is Pillow's, whose version is recorded).

What becomes an example (all counts are printed and stored in ``meta``):

* Images: every ``*.png`` under ``usr/share/openclipart/png`` (6,900 files and
  1,221 symlinks). RGBA is fitted into 32x32 keeping the aspect ratio
  (Lanczos, on premultiplied alpha), composited on white, centred with white
  padding; uint8 RGB.
* One example per distinct image: symlinks and files whose 32x32 rendering is
  identical (this includes byte-identical copies) form one group. The group's
  representative is its lexicographically first regular file (symlinks never
  count); its path gives the label and the metadata. So an image listed in
  several categories belongs to the category whose path sorts first.
* Blank images (a single colour at 32x32: failed renderings in the package)
  are dropped.
* Classes: categories with fewer than ``MIN_CLASS_SIZE`` (30) distinct images
  cannot be split 70/10/20 with a few examples in every split and are dropped
  (buttons, containers, decorations, logos, science), as is ``unsorted``,
  which means "no category" rather than one.
* At most ``MAX_PER_FOLDER`` images per folder (seeded choice): a few folders
  are machine-made series (1,378 star polygons ``shapes/stars/star_NNptMMstep``
  all titled "gramastar", 528 "Flat Icon Collection" icons) that would
  otherwise make a fifth of the data one trivial series.

Text, from the SVG of the same relative path (the two packages mirror each
other: every PNG has its SVG, match rate stored in ``meta``), parsed from its
RDF ``cc:Work``:

* ``title``: ``dc:title``, whitespace collapsed; kept as written even when it
  is a set name ("Lemon SVG theme", "gramastar": real, if generic, text).
  Empty titles fall back to the PNG ``Title`` chunk, then to the file name's
  words.
* ``keywords``: ``dc:subject`` (``rdf:Bag/rdf:li``) followed by the file
  name's words that the title and author do not already give (files are named
  ``<title>_<author>_<nn>`` truncated to 25 characters, e.g.
  ``flying_wasp_gerald_g._02``; for icon sets the name, e.g. ``openterm``, is
  the only specific text). Lower-cased, deduplicated, empty ones dropped.
* Label leakage: many keywords were generated from the folder path
  ("computer", "icons", "theme", "stars"). Every keyword word (split on
  non-letters/digits) that is a word of a folder name on any path of the
  image's group, or of any of the 22 category names, is removed, also in its
  singular (trailing "s" dropped) or plural form; a keyword left empty is
  dropped. Titles are not filtered: words like "computer" in "Green
  computer" are the author's description, not the folder's.

Splits: per class, a seeded permutation gives round(10%) validation,
round(20%) test, the rest train. Stored in file-name order with a split id.

Baselines (``--baselines``, stored in ``meta["baselines"]``): multinomial
logistic regression (L2 picked on validation, scipy L-BFGS) on a binary bag of
the train split's words of the joined text / title / keywords, and on 16x16x3
pixel means standardised with train statistics; test accuracy against the
majority class. They check both modalities carry signal and neither is
trivial.

Output (``np.load(..., allow_pickle=False)``): ``image`` uint8 (N, 32, 32, 3),
``label`` uint8 (N,), ``split`` uint8 (N,) (0 train, 1 validation, 2 test),
``text`` uint8 (B,): UTF-8 JSON list of N objects {"title", "keywords",
"file", "also"} (``also``: the other paths of the image's group), and
``meta``: 0-d unicode JSON (classes, counts, rules, image stats, provenance,
baselines when measured).
"""

from __future__ import annotations

import argparse
import collections
import glob
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
import zipfile

import numpy as np
import PIL
from PIL import Image

NAME = "clipart"
VERSION = "1.0.0"
SEED = 20250
DEB_VERSION = "1:0.18+dfsg-19"
PACKAGES = ("openclipart-png", "openclipart-svg")
PNG_DIR = "usr/share/openclipart/png"
SVG_DIR = "usr/share/openclipart/svg"
SIZE = 32
MIN_CLASS_SIZE = 30
EXCLUDED = ("unsorted",)
MAX_PER_FOLDER = 150
FRACTIONS = {"validation": 0.1, "test": 0.2}
SPLITS = ("train", "validation", "test")
NS = {"dc": "http://purl.org/dc/elements/1.1/",
      "cc": "http://web.resource.org/cc/",
      "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#"}

Image.MAX_IMAGE_PIXELS = None  # a few real drawings are 600 Mpixel


# ------------------------------------------------------------------ sources
def get_debs(deb_dir: str | None, work: str) -> dict[str, str]:
  """package -> .deb path, from deb_dir or downloaded with apt-get."""
  if not deb_dir:
    subprocess.run(["apt-get", "download"]
                   + [f"{p}={DEB_VERSION}" for p in PACKAGES],
                   cwd=work, check=True)
    deb_dir = work
  debs = {}
  for p in PACKAGES:
    found = sorted(glob.glob(os.path.join(deb_dir, f"{p}_*.deb")))
    if not found:
      raise SystemExit(f"no {p}_*.deb in {deb_dir}")
    version = subprocess.run(["dpkg-deb", "-f", found[-1], "Version"],
                             capture_output=True, text=True, check=True)
    if version.stdout.strip() != DEB_VERSION:
      raise SystemExit(f"{found[-1]} is version {version.stdout.strip()}, "
                       f"expected {DEB_VERSION}")
    debs[p] = found[-1]
  return debs


def sha256(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()


def list_pngs(png_root: str) -> dict[str, str]:
  """Listed path -> real path (both relative to png_root), sorted."""
  listed = {}
  for d, _, files in os.walk(png_root):
    for f in files:
      if f.endswith(".png"):
        path = os.path.join(d, f)
        rel = os.path.relpath(path, png_root)
        listed[rel] = os.path.relpath(os.path.realpath(path),
                                      os.path.realpath(png_root))
  return dict(sorted(listed.items()))


# ------------------------------------------------------------------ images
def render(path: str) -> np.ndarray:
  """PNG -> uint8 (32, 32, 3): aspect-preserving fit, on white."""
  with Image.open(path) as im:
    im.load()
    rgba = im if im.mode == "RGBA" else im.convert("RGBA")
  w, h = rgba.size
  scale = SIZE / max(w, h)
  size = (max(1, round(w * scale)), max(1, round(h * scale)))
  # Pillow resamples RGBA on premultiplied alpha, so transparent pixels'
  # colours do not bleed in; reducing_gap makes 600-Mpixel inputs tractable.
  small = rgba.resize(size, Image.LANCZOS, reducing_gap=3.0)
  canvas = Image.new("RGBA", (SIZE, SIZE), (255, 255, 255, 255))
  canvas.alpha_composite(small, ((SIZE - size[0]) // 2, (SIZE - size[1]) // 2))
  return np.asarray(canvas.convert("RGB"), np.uint8)


def png_title(path: str) -> str:
  with Image.open(path) as im:
    return clean(im.info.get("Title", ""))


# ------------------------------------------------------------------ text
def clean(s) -> str:
  return " ".join(str(s or "").split())


def words(s: str) -> list[str]:
  return re.findall(r"[^\W_]+", s.lower())


def singular(w: str) -> str:
  return w[:-1] if len(w) > 3 and w.endswith("s") else w


def svg_metadata(path: str) -> dict:
  """title, subjects (keywords) and creator of the SVG's cc:Work.

  All empty when the SVG is missing or unreadable (none is, in 0.18).
  """
  try:
    work = ET.parse(path).getroot().find(".//cc:Work", NS)
  except (OSError, ET.ParseError):
    work = None
  if work is None:
    return {"title": "", "subjects": [], "creator": ""}
  return {
      "title": clean(work.findtext("dc:title", "", NS)),
      "subjects": [clean(li.text) for li in
                   work.findall("dc:subject/rdf:Bag/rdf:li", NS)],
      "creator": clean(work.findtext("dc:creator/cc:Agent/dc:title", "", NS)),
  }


def banned_words(components) -> frozenset:
  """Words of folder names, in both singular and plural-ish form."""
  out = set()
  for c in components:
    for w in words(c):
      out.update({w, singular(w)})
  return frozenset(out)


def is_banned(w: str, banned: frozenset) -> bool:
  return w in banned or singular(w) in banned


def name_words(rel: str, title: str, creator: str) -> list[str]:
  """The file name's words not already in the title or author name.

  Names are truncated, so a word that is a prefix of a title or author word
  (``frances`` of Francesco) counts as given; digit-only words are series
  numbers and single letters mostly suffixes (``_r``).
  """
  given = words(title) + words(creator)
  stem = os.path.splitext(os.path.basename(rel))[0]
  return [w for w in words(stem) if len(w) > 1 and not w.isdigit()
          and not any(g.startswith(w) for g in given)]


def keywords(subjects, extra, banned: frozenset) -> list[str]:
  """Lower-cased keywords without leaked words, empty ones or repeats."""
  out = []
  for kw in list(subjects) + list(extra):
    kept = " ".join(w for w in words(kw) if not is_banned(w, banned))
    if kept and kept not in out:
      out.append(kept)
  return out


def describe(png_root, svg_root, rel, paths, categories) -> dict:
  """Text fields of one image: its representative path `rel`, all `paths`."""
  meta = svg_metadata(os.path.join(svg_root, rel[:-4] + ".svg"))
  title = (meta["title"] or png_title(os.path.join(png_root, rel))
           or " ".join(words(os.path.splitext(os.path.basename(rel))[0])))
  banned = banned_words(list(categories)
                        + [c for p in paths for c in p.split("/")[:-1]])
  kws = keywords(meta["subjects"], name_words(rel, title, meta["creator"]),
                 banned)
  return {"title": title, "keywords": kws, "file": rel,
          "also": [p for p in paths if p != rel]}


# ------------------------------------------------------------------ dataset
def group_images(png_root: str, listed: dict[str, str]):
  """Renders each real file once; groups identical 32x32 renderings.

  Returns (groups, images, blank): groups maps a representative path to all
  listed paths of its group; images the representative's rendering.
  """
  t0 = time.time()
  by_pixels, blank = {}, []
  reals = sorted(set(listed.values()))
  for i, real in enumerate(reals):
    img = render(os.path.join(png_root, real))
    if img.min() == img.max():
      blank.append(real)
    else:
      by_pixels.setdefault(img.tobytes(), (img, []))[1].append(real)
    if (i + 1) % 1000 == 0:
      print(f"  rendered {i + 1}/{len(reals)} ({time.time() - t0:.0f}s)",
            flush=True)
  listed_by_real = collections.defaultdict(list)
  for rel, real in listed.items():
    listed_by_real[real].append(rel)
  groups, images = {}, {}
  for img, members in by_pixels.values():
    rep = min(members)
    groups[rep] = sorted(p for m in members for p in listed_by_real[m])
    images[rep] = img
  return dict(sorted(groups.items())), images, sorted(blank)


def top(rel: str) -> str:
  return rel.split("/")[0]


def choose(groups, rng):
  """Applies the class and per-folder rules; returns (kept paths, classes)."""
  counts = collections.Counter(top(r) for r in groups)
  classes = sorted(c for c, n in counts.items()
                   if n >= MIN_CLASS_SIZE and c not in EXCLUDED)
  by_folder = collections.defaultdict(list)
  for rel in groups:
    if top(rel) in classes:
      by_folder[os.path.dirname(rel)].append(rel)
  kept = []
  for folder in sorted(by_folder):
    paths = by_folder[folder]
    if len(paths) > MAX_PER_FOLDER:
      pick = rng.choice(len(paths), MAX_PER_FOLDER, replace=False)
      paths = [paths[i] for i in sorted(pick)]
    kept.extend(paths)
  return sorted(kept), classes, dict(sorted(counts.items()))


def split_ids(labels: np.ndarray, num_classes: int, rng) -> np.ndarray:
  """Seeded stratified split: per class round(10%) val, round(20%) test."""
  split = np.zeros(len(labels), np.uint8)
  for c in range(num_classes):
    idx = rng.permutation(np.flatnonzero(labels == c))
    n_val = round(FRACTIONS["validation"] * len(idx))
    n_test = round(FRACTIONS["test"] * len(idx))
    split[idx[:n_val]] = 1
    split[idx[n_val:n_val + n_test]] = 2
  return split


def image_stats(images: np.ndarray) -> dict:
  x = images.reshape(-1, 3).astype(np.float64) / 255.0
  return {"mean": [round(float(v), 6) for v in x.mean(0)],
          "std": [round(float(v), 6) for v in x.std(0)]}


# ------------------------------------------------------------------ baselines
def fit_softmax(x, y, num_classes: int, l2: float):
  """L2-regularised multinomial logistic regression (L-BFGS, zero init)."""
  from scipy import optimize  # pylint: disable=g-import-not-at-top
  n, d = x.shape
  onehot = np.eye(num_classes)[y]

  def loss(w):
    w = w.reshape(d + 1, num_classes)
    z = x @ w[:-1] + w[-1]
    z = z - z.max(1, keepdims=True)
    lse = np.log(np.exp(z).sum(1, keepdims=True))
    p = np.exp(z - lse)
    value = float(-(onehot * (z - lse)).sum() / n
                  + 0.5 * l2 * (w[:-1] ** 2).sum())
    grad = np.vstack([x.T @ (p - onehot) / n + l2 * w[:-1],
                      (p - onehot).mean(0)])
    return value, np.asarray(grad).ravel()

  res = optimize.minimize(loss, np.zeros((d + 1) * num_classes), jac=True,
                          method="L-BFGS-B", options={"maxiter": 300})
  w = res.x.reshape(d + 1, num_classes)
  return lambda q: np.asarray(q @ w[:-1] + w[-1]).argmax(1)


def best_on_validation(feats, labels, split, num_classes) -> dict:
  """Picks l2 on validation; returns validation and test accuracy."""
  best = None
  for l2 in (1e-5, 1e-4, 1e-3, 1e-2, 1e-1):
    predict = fit_softmax(feats[split == 0], labels[split == 0], num_classes,
                          l2)
    acc = {s: float((predict(feats[split == i]) == labels[split == i]).mean())
           for i, s in enumerate(SPLITS) if i}
    if best is None or acc["validation"] > best["validation"]:
      best = {**acc, "l2": l2}
  return {k: v if k == "l2" else round(v, 4) for k, v in best.items()}


def bag_of_words(texts, split):
  """Binary bag of words over the training split's words (sparse)."""
  from scipy import sparse  # pylint: disable=g-import-not-at-top
  vocab = sorted({w for t, s in zip(texts, split) if s == 0 for w in words(t)})
  index = {w: i for i, w in enumerate(vocab)}
  rows, cols = [], []
  for r, t in enumerate(texts):
    for c in sorted({index[w] for w in words(t) if w in index}):
      rows.append(r)
      cols.append(c)
  return sparse.csr_matrix((np.ones(len(rows)), (rows, cols)),
                           shape=(len(texts), len(vocab)))


def baselines(images, labels, split, records, num_classes) -> dict:
  """Uni-modal linear baselines: how much each modality alone gives."""
  # The loader's one-field text (ume_jax is installed in the project venv).
  from ume_jax.data.datasets.clipart import joined_text  # pylint: disable=g-import-not-at-top
  train = labels[split == 0]
  majority = np.bincount(train, minlength=num_classes).argmax()
  out = {"majority_class": {"test": round(float(
      (labels[split == 2] == majority).mean()), 4)}}
  fields = {
      "text": [joined_text(r["title"], r["keywords"]) for r in records],
      "title": [r["title"] for r in records],
      "keywords": [", ".join(r["keywords"]) for r in records],
  }
  for name, texts in fields.items():
    out[f"{name}_bow_logreg"] = best_on_validation(
        bag_of_words(texts, split), labels, split, num_classes)
  # 16x16x3 pixels (2x2 means), standardised with the train statistics.
  x = images.reshape(-1, 16, 2, 16, 2, 3).mean((2, 4)).reshape(len(images), -1)
  x = x / 255.0
  mu, sd = x[split == 0].mean(0), x[split == 0].std(0) + 1e-3
  out["image_16x16_logreg"] = best_on_validation((x - mu) / sd, labels, split,
                                                 num_classes)
  return out


# ------------------------------------------------------------------ output
def save_npz(path: str, arrays: dict) -> None:
  """np.savez_compressed with fixed zip timestamps (byte-identical reruns)."""
  with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
    for key, value in arrays.items():
      buf = io.BytesIO()
      np.lib.format.write_array(buf, np.asanyarray(value), allow_pickle=False)
      info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
      info.compress_type = zipfile.ZIP_DEFLATED
      zf.writestr(info, buf.getvalue(), compresslevel=9)


def build(root: str, debs: dict, with_baselines: bool):
  png_root, svg_root = (os.path.join(root, d) for d in (PNG_DIR, SVG_DIR))
  rng = np.random.default_rng(SEED)
  listed = list_pngs(png_root)
  print(f"{len(listed)} listed PNGs, {len(set(listed.values()))} files")
  groups, images, blank = group_images(png_root, listed)
  kept, classes, counts = choose(groups, rng)
  all_categories = sorted({top(r) for r in listed})
  records = [describe(png_root, svg_root, rel, groups[rel], all_categories)
             for rel in kept]
  labels = np.array([classes.index(top(r)) for r in kept], np.uint8)
  split = split_ids(labels, len(classes), rng)
  image = np.stack([images[r] for r in kept])
  svg_found = sum(os.path.isfile(os.path.join(svg_root, r[:-4] + ".svg"))
                  for r in listed)
  title_agrees = sum(png_title(os.path.join(png_root, r)) == rec["title"]
                     for r, rec in zip(kept, records))
  meta = {
      "name": NAME, "version": VERSION, "seed": SEED,
      "classes": classes,
      "categories": all_categories,  # every top-level folder, kept or not
      "splits": {s: {"num_examples": int((split == i).sum()),
                     "class_counts": np.bincount(
                         labels[split == i], minlength=len(classes)).tolist()}
                 for i, s in enumerate(SPLITS)},
      "class_counts": dict(zip(classes, np.bincount(labels).tolist())),
      "image_stats": image_stats(image[split == 0]),
      "sources": {
          "packages": {p: {"version": DEB_VERSION, "deb": os.path.basename(d),
                           "deb_sha256": sha256(d)} for p, d in debs.items()},
          "origin": "openclipart.org 0.18, packaged by Debian",
          "licence": "Creative Commons Public Domain Dedication (see "
                     "/usr/share/doc/openclipart-png/copyright)",
          "pillow": PIL.__version__,
      },
      "counts": {
          "listed_pngs": len(listed), "png_files": len(set(listed.values())),
          "distinct_images": len(groups), "blank_dropped": len(blank),
          "multi_category_groups": sum(len({top(p) for p in g}) > 1
                                       for g in groups.values()),
          "distinct_per_category": counts,
          "svg_match_rate": round(svg_found / len(listed), 4),
          "png_title_equals_svg_title": round(title_agrees / len(kept), 4),
          "empty_keywords": sum(not r["keywords"] for r in records),
      },
      "rules": {"min_class_size": MIN_CLASS_SIZE, "excluded": list(EXCLUDED),
                "max_per_folder": MAX_PER_FOLDER, "fractions": FRACTIONS,
                "image": f"RGBA fit into {SIZE}x{SIZE} (Lanczos, aspect kept),"
                         " on white, centred", "blank": blank},
      "generator": "scripts/make_clipart.py",
  }
  if with_baselines:
    meta["baselines"] = baselines(image, labels, split, records, len(classes))
  text = json.dumps(records, ensure_ascii=False, sort_keys=True).encode()
  return {"image": image, "label": labels, "split": split,
          "text": np.frombuffer(text, np.uint8),
          "meta": np.array(json.dumps(meta, sort_keys=True))}, meta


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--debs", help="folder holding the two .debs (default: "
                  "apt-get download them)")
  ap.add_argument("--out", default="ume_jax/data/assets/clipart.npz")
  ap.add_argument("--baselines", action="store_true",
                  help="measure uni-modal logistic-regression baselines")
  args = ap.parse_args()
  t0 = time.time()
  work = tempfile.mkdtemp(prefix="clipart_")
  try:
    debs = get_debs(args.debs, work)
    for deb in debs.values():
      subprocess.run(["dpkg-deb", "-x", deb, work], check=True)
    arrays, meta = build(work, debs, args.baselines)
  finally:
    shutil.rmtree(work)
  os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
  save_npz(args.out, arrays)
  print(json.dumps({k: meta[k] for k in ("class_counts", "counts", "splits",
                                         "image_stats")}, indent=1))
  if "baselines" in meta:
    print(json.dumps(meta["baselines"], indent=1))
  print(f"wrote {args.out}: {os.path.getsize(args.out)} bytes in "
        f"{time.time() - t0:.0f}s")


if __name__ == "__main__":
  main()
