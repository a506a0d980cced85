"""Throughput of the avdigits training input pipeline (examples/s).

    python benchmarks/input_pipeline.py [--batches 50] [--batch_size 128]

Uses the packaged asset (prepared into --data_dir, default the usual cache)
if it exists, otherwise a fake asset of the real size (7000/1000/2000) in a
temporary directory. Times `--batches` batches after `--warmup` batches for
worker_count 0 and 2, returning process-local numpy batches ("numpy") and
global jax.Arrays sharded over all local devices ("jax.Array").
"""

import argparse
import json
import os
import pathlib
import tempfile
import time


def _fake_asset(path, sizes=(7000, 1000, 2000)):
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  d = {}
  for s, n in zip(("train", "validation", "test"), sizes):
    d[f"image_{s}"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    d[f"audio_{s}"] = rng.integers(0, 256, (n, 40, 40), dtype=np.uint8)
    d[f"label_{s}"] = rng.integers(0, 10, (n,), dtype=np.uint8)
    d[f"voice_{s}"] = rng.integers(0, 50, (n,), dtype=np.int16)
  meta = {"name": "avdigits", "version": "1.0.0", "fake": True}
  np.savez(path, meta=np.array(json.dumps(meta)), **d)
  return path


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batches", type=int, default=50)
  parser.add_argument("--warmup", type=int, default=5)
  parser.add_argument("--batch_size", type=int, default=128)
  parser.add_argument("--data_dir", default=None)
  parser.add_argument("--workers", default="0,2")
  args = parser.parse_args()

  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.FLAGS.mark_as_parsed()  # grain workers read absl flags.
  import jax  # pylint: disable=g-import-not-at-top
  import ml_collections  # pylint: disable=g-import-not-at-top
  from ume_jax.data.datasets import avdigits as asset_lib  # pylint: disable=g-import-not-at-top
  from ume_jax.data import get_dataset  # pylint: disable=g-import-not-at-top

  tmp = tempfile.TemporaryDirectory()
  if asset_lib.PACKAGED_ASSET.exists():
    asset, kind = asset_lib.PACKAGED_ASSET, "real"
    data_dir = args.data_dir
  else:
    asset, kind = _fake_asset(pathlib.Path(tmp.name) / "fake.npz"), "fake"
    data_dir = args.data_dir or os.path.join(tmp.name, "tfds")
  t = time.perf_counter()
  cfg = dict(name="avdigits", data_dir=data_dir, asset_path=str(asset))
  ds = get_dataset(ml_collections.ConfigDict(cfg))
  print(f"avdigits ({kind} asset, {ds.spec.split_sizes['train']} train "
        f"examples) ready in {time.perf_counter() - t:.1f} s; "
        f"{os.cpu_count()} CPUs, {jax.device_count()} {jax.devices()[0].platform}"
        " device(s)")

  mesh = jax.make_mesh((jax.device_count(),), ("data",))
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
  bs = args.batch_size - args.batch_size % jax.device_count()
  rows = []
  for workers in [int(w) for w in args.workers.split(",")]:
    ds = get_dataset(ml_collections.ConfigDict(dict(cfg, worker_count=workers)))
    for out, sh, pidx in (("numpy", None, 0), ("jax.Array", sharding, None)):
      it = ds.train_iterator(bs, sh, seed=0, process_index=pidx)
      t = time.perf_counter()
      for _ in range(args.warmup):
        jax.block_until_ready(next(it))
      warm = time.perf_counter() - t
      t = time.perf_counter()
      for _ in range(args.batches):
        jax.block_until_ready(next(it))
      dt = time.perf_counter() - t
      rows.append((workers, out, warm, args.batches * bs / dt))
      it.close()
  print(f"\n{'workers':>7}  {'output':<9}  {'warm-up s':>9}  {'examples/s':>10}"
        f"   ({args.batches} batches of {bs} after {args.warmup} warm-up)")
  for workers, out, warm, eps in rows:
    print(f"{workers:>7}  {out:<9}  {warm:>9.2f}  {eps:>10.0f}")
  tmp.cleanup()


if __name__ == "__main__":
  main()
