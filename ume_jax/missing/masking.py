"""Where missing modalities are decided and substituted.

Everything here is a pure jax function, used inside jitted steps:
- ``train_present``: per-sample missing-modality augmentation (MMA) masks;
- ``MaskingSpec.training_present``: training-time missingness, a fixed set
  of training examples that never have a modality (the field's protocol and
  the paper's page-8 setting; which examples: ``protocol.py``);
- ``substitute_inputs`` / ``substitute_features``: what a model sees in place
  of an absent modality.
``MaskingSpec`` gathers a run's masking settings from the config, once, so
methods receive it rather than the whole config. Evaluation masks:
``scenarios.py``; the keys every mask is drawn from: ``keys.py``.

Masks are boolean ``(batch, num_modalities)`` arrays, True = present, in the
dataset's canonical modality order.
"""
import dataclasses
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ume_jax.config import rules
from ume_jax.missing import protocol

# What stands in for an absent modality: zeros, the dataset's mean input, a
# learned feature-level token, or missing-aware prompts' choice ("map": an
# all-ones image - ones after standardisation - and an empty text, i.e. all
# padding ids).
SUBSTITUTES = ("zeros", "mean", "learned", "map")

# The ``mma`` and ``train_missing`` sections (one entry per modality; that
# they name the dataset's modalities is checked against the dataset).
MMA_KEYS = {"drop_probs": rules.PerKey(rules.number(0, 1, high_open=True))}
TRAIN_MISSING_KEYS = {
    "type": rules.text,             # "" | a modality | "both" | "mixed"
    "ratio": rules.number(0, 1),    # eta of the training split, with type
    "rates": rules.PerKey(rules.number(0, 1)),   # or an explicit mix
    "seed": rules.integer(),
}


@dataclasses.dataclass(frozen=True, eq=False)
class MaskingSpec:
  """How one run decides and fills missing modalities.

  ``drop_probs``: MMA's per-sample drop probability per modality;
  ``train_absent``: (N_train, M) bool, which training examples lack which
  modality for good (None: none do); ``means``: the dataset's mean input per
  modality (for ``substitute == "mean"``).
  """
  modalities: tuple[str, ...]
  substitute: str
  drop_probs: tuple[float, ...]
  train_absent: np.ndarray | None = None
  means: Mapping[str, np.ndarray] | None = None

  @classmethod
  def from_config(cls, config, spec,
                  means: Mapping[str, np.ndarray] | None = None
                  ) -> "MaskingSpec":
    """From ``config`` for dataset ``spec`` (a ``DatasetSpec``)."""
    modalities = tuple(spec.modalities)
    return cls(
        modalities=modalities, substitute=config.model.substitute,
        drop_probs=tuple(float(config.mma.drop_probs[m]) for m in modalities),
        train_absent=training_absent(config.train_missing, modalities,
                                     spec.split_sizes["train"]),
        means=means)

  @property
  def unimodal_substitute(self) -> str:
    """A uni-modal model has no feature-level token to learn: where the
    fusion models use a ``learned`` substitute, its absent input is zeros."""
    return "zeros" if self.substitute == "learned" else self.substitute

  def training_present(self, batch: dict) -> jnp.ndarray:
    """Modalities a training example has: natively (``present``) and after
    the training-set missingness took some away for good. An example whose
    only native modality would go keeps it."""
    if self.train_absent is None:
      return batch["present"]
    absent = jnp.asarray(self.train_absent)[batch["index"]]
    present = batch["present"] & ~absent
    return jnp.where(jnp.any(present, axis=1, keepdims=True), present,
                     batch["present"])

  def augmented_present(self, key: jax.Array, present: jnp.ndarray
                        ) -> jnp.ndarray:
    return train_present(key, present, self.drop_probs)

  def inputs(self, batch: dict, present: jnp.ndarray, *,
             unimodal: bool = False, skip: Sequence[str] = ()
             ) -> dict[str, jnp.ndarray]:
    """``batch`` with absent modalities' inputs substituted (those in
    ``skip`` passed through: e.g. cached prefixes, substituted apart)."""
    kind = self.unimodal_substitute if unimodal else self.substitute
    return substitute_inputs(batch, present, self.modalities, kind,
                             self.means, skip=skip)


def training_absent(train_missing, modalities: Sequence[str],
                    num_examples: int) -> np.ndarray | None:
  """(N, M) bool: the training examples that lack a modality in every stage
  and run (``train_missing``: a ``type`` at ``ratio``, or explicit per-
  modality ``rates``), or None when none do."""
  rates = {m: float(r) for m, r in (train_missing.rates or {}).items()
           if float(r) > 0}
  seed = int(train_missing.seed)
  if train_missing.type and float(train_missing.ratio) > 0:
    return protocol.absent_by_type(seed, train_missing.type,
                                   float(train_missing.ratio), modalities,
                                   num_examples)
  if rates:
    return protocol.absent_by_mix(seed, rates, modalities, num_examples)
  return None


def train_present(key: jax.Array, data_present: jnp.ndarray,
                  drop_probs: Sequence[float]) -> jnp.ndarray:
  """Drops each modality of each sample with its own probability.

  A sample never loses all of its modalities: where the draw would leave a
  sample with none, one of the modalities it natively has is kept, chosen
  uniformly. So for M modalities the marginal drop rate of modality m is
  ``p_m - prod(p) / M`` when all are present natively (tested).

  Args:
    key: PRNG key, already folded with the step.
    data_present: (B, M) bool, the modalities the data really has.
    drop_probs: length-M drop probabilities.
  """
  drop_key, rescue_key = jax.random.split(key)
  p = jnp.asarray(drop_probs, jnp.float32)
  keep = jax.random.uniform(drop_key, data_present.shape) >= p
  present = keep & data_present
  # Rescue: keep one native modality, picked by the largest random score.
  scores = jax.random.uniform(rescue_key, data_present.shape)
  scores = jnp.where(data_present, scores, -1.0)
  rescued = jax.nn.one_hot(jnp.argmax(scores, axis=1), data_present.shape[1],
                           dtype=jnp.bool_)
  nothing_left = ~jnp.any(present, axis=1, keepdims=True)
  return jnp.where(nothing_left, rescued & data_present, present)


def substitute_inputs(inputs: Mapping[str, jnp.ndarray], present: jnp.ndarray,
                      modalities: Sequence[str], kind: str,
                      means: Mapping[str, jnp.ndarray] | None = None,
                      skip: Sequence[str] = ()) -> dict[str, jnp.ndarray]:
  """Replaces absent modalities' inputs by zeros, the dataset mean input or
  (``map``) ones for float inputs and padding ids (an empty text) for
  integer ones; modalities in ``skip`` pass through.

  ``learned`` substitutes act on features inside the model, so inputs pass
  through unchanged; the model's encoder output is replaced there.
  """
  out = dict(inputs)
  if kind == "learned":
    return out
  for i, m in enumerate(modalities):
    if m in skip:
      continue
    x = inputs[m]
    if kind == "zeros":
      fill = jnp.zeros_like(x)
    elif kind == "mean":
      fill = jnp.broadcast_to(means[m].astype(x.dtype), x.shape)
    elif kind == "map":
      fill = (jnp.zeros_like(x) if jnp.issubdtype(x.dtype, jnp.integer)
              else jnp.ones_like(x))
    else:
      raise ValueError(f"Unknown substitute {kind!r}; expected one of"
                       f" {SUBSTITUTES}")
    keep = present[:, i].reshape((-1,) + (1,) * (x.ndim - 1))
    out[m] = jnp.where(keep, x, fill)
  return out


def substitute_features(features: jnp.ndarray, present_m: jnp.ndarray,
                        token: jnp.ndarray) -> jnp.ndarray:
  """Feature-level substitute: a learned per-modality token where absent."""
  return jnp.where(present_m[:, None], features, token[None, :])
