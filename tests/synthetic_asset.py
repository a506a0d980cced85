"""A small *learnable* avdigits-format asset for end-to-end tests.

Each class has a fixed random prototype per modality; examples are the
prototype plus noise, with more noise on audio, so image is the stronger
modality as in the real asset and scores move measurably with training.
"""
import json

import numpy as np

SPLITS = ("train", "validation", "test")


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
