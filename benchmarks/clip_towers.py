"""Train-step time and memory of ``configs/mmimdb.py:map,clip`` at full size.

    .venv/bin/python benchmarks/clip_towers.py [--snapshot DIR]
        [--batch_sizes 8,32] [--dtype bfloat16] [--seconds 20]

The ``mma`` fine-tuning step of the CLIP config (ume_jax's trainer path:
``methods.fusion``, ``trainer.plan_state``, ``trainer.jit_train_step``),
its towers built from a snapshot's ``config.json`` (default: CLIP
ViT-B/16's, ``tests/fixtures/hf/full_size/clip-vit-base-patch16``; only the
architecture is read, weights are random: speed and memory do not depend
on them), on random 224 x 224 images and 77-token texts, MM-IMDB's 23
labels. Two runners, interleaved: ``frozen`` (the config as shipped: no
gradient is computed for either tower) and ``tuned`` (``:clip,tuned``:
towers at 1/100 of the heads' rate, so the backward pass runs through
them). Per batch size: ms/step, samples/s, XLA's planned argument and
temporary memory (``compiled.memory_analysis()``), and the process's peak
RSS so far. The last line is ``ratio_tuned_over_frozen=<median step-time
ratio over batch sizes>``. Data loading is excluded (cycled device
batches). Measurements: README's encoder section.
"""
import argparse
import os
import resource
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_step import JaxRunner, benchmark  # noqa: E402  (after sys.path)

DEFAULT_SNAPSHOT = os.path.join(ROOT, "tests", "fixtures", "hf", "full_size",
                                "clip-vit-base-patch16")


def get_config(snapshot, tuned, dtype):
  from configs import mmimdb  # pylint: disable=g-import-not-at-top
  from ume_jax.weights import graft  # pylint: disable=g-import-not-at-top
  config = mmimdb.get_config("map,clip,tuned" if tuned else "map,clip")
  config.hf_snapshot = snapshot
  config = graft.with_architectures(config)
  if dtype != "float32":
    for enc in config.model.encoders.values():
      enc.kwargs = {**enc.kwargs, "dtype": dtype}
  return config


def spec(config):
  from ume_jax.data import DatasetSpec  # pylint: disable=g-import-not-at-top
  image = config.model.encoders.image.kwargs.image_size
  # The config's 77 tokens, or fewer where the snapshot's context is shorter.
  length = min(config.data.max_len,
               config.model.encoders.text.kwargs.max_positions)
  return DatasetSpec(
      name="mmimdb", modalities=("image", "text"),
      input_shapes={"image": (image, image, 3),
                    "text": (length,)},
      num_classes=23, multilabel=True, split_sizes={"train": 15552},
      input_dtypes={"text": "int32"})


def batches(s, batch_size, vocab_size, count=2, seed=0):
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed + batch_size)
  out = []
  for _ in range(count):
    ids = rng.integers(1, vocab_size - 2,
                       (batch_size,) + s.input_shapes["text"])
    ids[:, -1] = vocab_size - 1            # <|endoftext|>: CLIP's last id
    out.append({
        "image": rng.standard_normal(
            (batch_size,) + s.input_shapes["image"]).astype(np.float32),
        "text": ids.astype(np.int32),
        "present": np.ones((batch_size, 2), bool),
        # Example indices: :map's training-set missingness reads them.
        "index": rng.integers(0, s.split_sizes["train"],
                              batch_size).astype(np.int32),
        "label": (rng.random((batch_size, 23)) < 0.1).astype(np.float32)})
  return out


class Runner(JaxRunner):
  """The jitted ``mma`` step on fresh state; ``run(n)`` does n steps."""

  def __init__(self, config):
    import jax  # pylint: disable=g-import-not-at-top
    from ume_jax import methods  # pylint: disable=g-import-not-at-top
    from ume_jax.infra import mesh as mesh_lib  # pylint: disable=g-import-not-at-top
    from ume_jax.missing.masking import MaskingSpec  # pylint: disable=g-import-not-at-top
    from ume_jax.train import optim, seeds, trainer  # pylint: disable=g-import-not-at-top
    self.jax, self.spec = jax, spec(config)
    self.vocab_size = config.model.encoders.text.kwargs.vocab_size
    method = methods.fusion(config.model, self.spec, "mma",
                            MaskingSpec.from_config(config, self.spec))
    mesh = mesh_lib.build_mesh(config.mesh)
    self.batch_sh = mesh_lib.batch_sharding(mesh)
    stage, seed = config.finetune, seeds.fusion_seed(config.seed)
    tx = optim.make_optimizer(stage.optim, 100_000)
    init_fn, state_sh = trainer.plan_state(method, tx, mesh)
    self.state = init_fn(seeds.init_key(seed))
    self.step_fn = trainer.jit_train_step(
        method, tx, stage, state_sh, self.batch_sh, mesh, multilabel=True,
        seed=seed)
    self.batches, self.memory = {}, {}

  def set_batch_size(self, batch_size):
    if batch_size not in self.batches:
      self.batches[batch_size] = [self.jax.device_put(b, self.batch_sh)
                                  for b in batches(self.spec, batch_size,
                                                   self.vocab_size)]
      mem = self.step_fn.lower(self.state, self.batches[batch_size][0]
                               ).compile().memory_analysis()
      self.memory[batch_size] = (mem.argument_size_in_bytes / 2**20,
                                 mem.temp_size_in_bytes / 2**20)
    self.current = self.batches[batch_size]


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--snapshot", default=DEFAULT_SNAPSHOT)
  p.add_argument("--batch_sizes", default="8,32")
  p.add_argument("--dtype", default="float32",
                 choices=("float32", "bfloat16"))
  p.add_argument("--seconds", type=float, default=20.0)
  p.add_argument("--repeats", type=int, default=3)
  args = p.parse_args()
  runners = {name: Runner(get_config(args.snapshot, name == "tuned",
                                     args.dtype))
             for name in ("frozen", "tuned")}
  sizes = [int(b) for b in args.batch_sizes.split(",")]
  results = benchmark(runners, sizes, args.seconds, args.repeats, warmup=2)
  print(f"\n{os.path.basename(args.snapshot.rstrip('/'))}, {args.dtype},"
        " median of repeats\n")
  print("| batch | runner | ms/step | samples/s | XLA args MB | XLA temp MB |")
  print("|---|---|---|---|---|---|")
  ratios = []
  for bs in sizes:
    per = {n: statistics.median(v) for n, v in results[bs].items()}
    for name, sps in per.items():
      args_mb, temp_mb = runners[name].memory[bs]
      print(f"| {bs} | {name} | {bs / sps * 1e3:.0f} | {sps:.2f} |"
            f" {args_mb:.0f} | {temp_mb:.0f} |")
    ratios.append(per["frozen"] / per["tuned"])
  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
  print(f"\npeak RSS {rss:.0f} MB")
  print(f"ratio_tuned_over_frozen={statistics.median(ratios):.2f}")


if __name__ == "__main__":
  main()
