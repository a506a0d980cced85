"""Shared pieces for core tests: a tiny spec, config and random batches."""
import numpy as np

from configs import default as default_config
from ume_jax.data import DatasetSpec

SPEC = DatasetSpec(
    name="tiny", modalities=("image", "audio"),
    input_shapes={"image": (8, 8, 1), "audio": (12, 8, 1)}, num_classes=4,
    multilabel=False, split_sizes={"train": 64, "validation": 16, "test": 16})


def tiny_config():
  c = default_config.get_config()
  small = {"channels": (8, 16), "strides": (2, 2), "feature_dim": 32}
  for m in ("image", "audio"):
    c.model.encoders[m].kwargs = dict(small)
  c.pretrain.num_epochs = 1
  c.pretrain.batch_size = 16
  return c


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
