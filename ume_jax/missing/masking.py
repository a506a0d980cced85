"""Where missing modalities are decided and substituted.

Everything here is a pure jax function, used inside jitted steps:
- ``train_present``: per-sample missing-modality augmentation (MMA) masks;
- ``scenario_present``: seeded evaluation masks, identical for every method;
- ``permanently_present``: training-time missingness, a fixed fraction of
  training examples that never have a modality (the paper's page-8 setting);
- ``substitute_inputs`` / ``substitute_features``: what a model sees in place
  of an absent modality.
``MaskingSpec`` gathers a run's masking settings from the config, once, so
methods receive it rather than the whole config. The keys masks are drawn
from come from ``keys.py``.

Masks are boolean ``(batch, num_modalities)`` arrays, True = present, in the
dataset's canonical modality order.
"""
import dataclasses
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ume_jax.config import rules
from ume_jax.missing import keys

SUBSTITUTES = ("zeros", "mean", "learned")

# The ``mma`` and ``train_missing`` sections (one entry per modality; that
# they name the dataset's modalities is checked against the dataset).
MMA_KEYS = {"drop_probs": rules.PerKey(rules.number(0, 1, high_open=True))}
TRAIN_MISSING_KEYS = {
    "rates": rules.PerKey(rules.number(0, 1, high_open=True)),
    "seed": rules.integer(),
}


@dataclasses.dataclass(frozen=True, eq=False)
class MaskingSpec:
  """How one run decides and fills missing modalities.

  ``drop_probs``: MMA's per-sample drop probability per modality;
  ``train_missing_rates`` / ``train_missing_seed``: the fraction of training
  examples lacking each modality for good; ``means``: the dataset's mean
  input per modality (for ``substitute == "mean"``).
  """
  modalities: tuple[str, ...]
  substitute: str
  drop_probs: tuple[float, ...]
  train_missing_rates: tuple[float, ...]
  train_missing_seed: int
  means: Mapping[str, np.ndarray] | None = None

  @classmethod
  def from_config(cls, config, modalities: Sequence[str],
                  means: Mapping[str, np.ndarray] | None = None
                  ) -> "MaskingSpec":
    rates = dict(config.train_missing.rates or {})
    return cls(
        modalities=tuple(modalities), substitute=config.model.substitute,
        drop_probs=tuple(float(config.mma.drop_probs[m]) for m in modalities),
        train_missing_rates=tuple(float(rates.get(m, 0.0))
                                  for m in modalities),
        train_missing_seed=int(config.train_missing.seed), means=means)

  @property
  def unimodal_substitute(self) -> str:
    """A uni-modal model has no feature-level token to learn: where the
    fusion models use a ``learned`` substitute, its absent input is zeros."""
    return "zeros" if self.substitute == "learned" else self.substitute

  def training_present(self, batch: dict) -> jnp.ndarray:
    """Modalities a training example has: natively (``present``) and after
    the training-set missingness took some away for good."""
    if not any(r > 0 for r in self.train_missing_rates):
      return batch["present"]
    return batch["present"] & permanently_present(
        self.train_missing_seed, batch["index"], self.train_missing_rates)

  def augmented_present(self, key: jax.Array, present: jnp.ndarray
                        ) -> jnp.ndarray:
    return train_present(key, present, self.drop_probs)

  def inputs(self, batch: dict, present: jnp.ndarray, *,
             unimodal: bool = False) -> dict[str, jnp.ndarray]:
    """``batch`` with absent modalities' inputs substituted."""
    kind = self.unimodal_substitute if unimodal else self.substitute
    return substitute_inputs(batch, present, self.modalities, kind,
                             self.means)


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


def permanently_present(seed: int, index: jnp.ndarray,
                        rates: Sequence[float]) -> jnp.ndarray:
  """(B, M) mask: example ``index`` lacks modality m for good if its draw for
  m falls under ``rates[m]``. Depends only on the seed and the example, so
  the same examples miss the same modality in every epoch, stage and run.
  An example never loses every modality: the one with the largest margin
  over its rate stays.
  """
  rates = jnp.asarray(rates, jnp.float32)
  u = jax.vmap(jax.vmap(jax.random.uniform))(
      keys.training_missingness_keys(seed, rates.shape[0], index))
  present = u >= rates
  keep = jax.nn.one_hot(jnp.argmax(u - rates, axis=1), rates.shape[0],
                        dtype=jnp.bool_)
  return jnp.where(jnp.any(present, axis=1, keepdims=True), present, keep)


def scenario_present(mask_seed: int, index: jnp.ndarray,
                     always_absent: jnp.ndarray, rate_modality: int,
                     rate: float) -> jnp.ndarray:
  """Evaluation mask of one scenario for examples ``index`` (B,).

  Modalities flagged in ``always_absent`` (M,) are missing for every example;
  modality ``rate_modality`` (or none when < 0) is missing for a fraction
  ``rate`` of examples. Each example's draw depends only on the seed and its
  index in the split, so masks are the same for every method, batch size and
  process count.
  """
  num_modalities = always_absent.shape[0]
  u = jax.vmap(jax.random.uniform)(
      keys.evaluation_keys(mask_seed, rate_modality, index))
  rate_absent = (u < rate)[:, None] & (
      jnp.arange(num_modalities) == rate_modality)[None, :]
  return ~(always_absent[None, :] | rate_absent)


def substitute_inputs(inputs: Mapping[str, jnp.ndarray], present: jnp.ndarray,
                      modalities: Sequence[str], kind: str,
                      means: Mapping[str, jnp.ndarray] | None = None
                      ) -> dict[str, jnp.ndarray]:
  """Replaces absent modalities' inputs by zeros or the dataset mean input.

  ``learned`` substitutes act on features inside the model, so inputs pass
  through unchanged; the model's encoder output is replaced there.
  """
  out = dict(inputs)
  if kind == "learned":
    return out
  for i, m in enumerate(modalities):
    x = inputs[m]
    if kind == "zeros":
      fill = jnp.zeros_like(x)
    elif kind == "mean":
      fill = jnp.broadcast_to(means[m].astype(x.dtype), x.shape)
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
