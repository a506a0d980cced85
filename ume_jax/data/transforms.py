"""Per-example grain transforms shared by datasets (run in grain workers).

Every dataset's preprocessing ends in the batch convention: modality name ->
float32 array of the spec's input shape, `label` -> int32 scalar (multi-label:
float32 (C,)), `present` -> bool (M,) in modality order.
"""

import dataclasses

import grain
import numpy as np


@dataclasses.dataclass(frozen=True)
class Standardize(grain.transforms.Map):
  """uint8 modalities -> float32 `(x / 255 - mean) / std`; adds `present`.

  Works on one example or on a batch of them (vectorised: the training
  pipeline batches first, then standardises, one numpy op per modality).

  Attributes:
    stats: modality -> (mean, std) of x/255 (the canonical modality order is
      the order of this dict).
    multilabel: whether `label` is a multi-hot vector.
  """

  stats: dict[str, tuple[float, float]]
  multilabel: bool = False

  def map(self, element):
    out = {}
    for m, (mean, std) in self.stats.items():
      x = np.asarray(element[m], np.float32) * np.float32(1 / 255)
      out[m] = (x - np.float32(mean)) * np.float32(1 / std)
    label = np.asarray(element["label"])
    out["label"] = label.astype(np.float32 if self.multilabel else np.int32)
    batch_shape = label.shape[:-1] if self.multilabel else label.shape
    present = element.get("present")
    out["present"] = (np.ones(batch_shape + (len(self.stats),), bool)
                      if present is None else np.asarray(present, bool))
    return out


@dataclasses.dataclass(frozen=True)
class RandomShift(grain.transforms.RandomMap):
  """Shifts uint8 modalities by up to `max_shift[m]` pixels per axis (zero fill).

  `max_shift[m]` is a tuple with one entry per leading axis of `m` (0 = fixed).
  Randomness comes from grain's per-record rng, so it is reproducible from the
  seed and the record's position and independent of worker count.
  """

  max_shift: dict[str, tuple[int, ...]]

  def random_map(self, element, rng: np.random.Generator):
    element = dict(element)
    for m, limits in self.max_shift.items():
      x = element[m]
      out = np.zeros_like(x)
      src, dst = [], []
      for axis_len, lim in zip(x.shape, limits):
        s = int(rng.integers(-lim, lim + 1)) if lim else 0
        src.append(slice(max(0, -s), axis_len - max(0, s)))
        dst.append(slice(max(0, s), axis_len - max(0, -s)))
      out[tuple(dst)] = x[tuple(src)]
      element[m] = out
    return element
