"""Uni-modal teacher distillation (``umt``; Du et al., ICML'23).

The late-fusion model's encoders train from scratch, as in ``late_fusion``,
with one more loss: each encoder's features are pulled (mean squared error)
toward those of the frozen uni-modal pre-trained encoder of its modality on
the same input, on the examples that have that modality.

The teachers live in the student's parameter tree under ``teacher/<m>`` so
that they are placed and sharded like the encoders they teach, restored
with the run and checked with it; ``FROZEN_PATHS`` gives them learning-rate
multiplier 0 (``optim.py``: no optimizer state, no update, no gradient
computed), and the loss stops gradients at their features besides.
"""
import dataclasses
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp

from ume_jax.config import rules
from ume_jax.models.registry import build_encoder

TEACHER = "teacher"
FROZEN_PATHS = (rf"{TEACHER}/.*",)
DEFAULT_WEIGHT = 1.0

# The ``umt`` config section.
CONFIG_KEYS = {"distill_weight": rules.number(0)}


def feature_mse(student: Mapping[str, jnp.ndarray],
                teacher: Mapping[str, jnp.ndarray], present: jnp.ndarray,
                modalities: Sequence[str]) -> jnp.ndarray:
  """Sum over modalities of the mean squared feature difference over the
  examples that have the modality (``present`` (B, M)); a modality absent
  from the whole batch adds 0. The teacher side gets no gradient."""
  total = jnp.zeros((), jnp.float32)
  for i, m in enumerate(modalities):
    target = jax.lax.stop_gradient(teacher[m]).astype(jnp.float32)
    diff = student[m].astype(jnp.float32) - target
    per_example = jnp.mean(jnp.square(diff).reshape(diff.shape[0], -1),
                           axis=1)
    has = present[:, i]
    # where, not a product: an absent row's value never reaches the sum.
    kept = jnp.where(has, per_example, 0.0)
    total = total + jnp.sum(kept) / jnp.maximum(jnp.sum(has), 1)
  return total


@dataclasses.dataclass(frozen=True)
class Teachers:
  """The uni-modal encoders, one per modality, as the pre-training stage
  builds them (``models/classifier.UniModalClassifier``'s ``encoder``)."""
  encoders: Mapping[str, tuple[str, Mapping[str, Any]]]   # m -> (name, kw)

  def _module(self, m: str):
    name, kwargs = self.encoders[m]
    return build_encoder(name, dict(kwargs))

  def init(self, key: jax.Array, inputs: Mapping[str, Any]) -> dict:
    """Boxed parameters ``{m: encoder params}`` (overwritten by the
    uni-modal checkpoints before training: ``warm_start.load_teachers``)."""
    keys = jax.random.split(key, len(self.encoders))
    return {m: self._module(m).init(k, inputs[m])["params"]
            for m, k in zip(self.encoders, keys)}

  def features(self, params: Mapping[str, Any],
               inputs: Mapping[str, jnp.ndarray]) -> dict[str, jnp.ndarray]:
    frozen = jax.lax.stop_gradient(params)
    return {m: self._module(m).apply({"params": frozen[m]}, inputs[m])
            for m in self.encoders}
