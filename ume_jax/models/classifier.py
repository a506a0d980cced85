"""Uni-modal classifiers and the late-fusion multi-modal classifier.

Parameter names are shared on purpose: a uni-modal model is ``{encoder, head}``
and the late-fusion model holds ``{<m>_encoder, <m>_head}`` per modality, so
fine-tuning copies uni-modal checkpoints in by renaming only
(``ume_jax/train/warm_start.py``).
"""
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax.numpy as jnp

from ume_jax.missing import masking
from ume_jax.models import layers, prompts
from ume_jax.models.registry import build_encoder

FUSIONS = ("sum_logits", "concat_linear")
MISSING_LOGITS = ("keep", "drop")


def _head(num_classes: int, name: str) -> nn.Dense:
  return layers.dense(num_classes, ("embed", "classes"), name=name,
                      relu_follows=False)


class UniModalClassifier(nn.Module):
  """Encoder + linear head for one modality (the pre-training stage)."""

  encoder_name: str
  encoder_kwargs: Mapping[str, Any]
  num_classes: int

  @nn.compact
  def __call__(self, x: jnp.ndarray, start: int = 0) -> jnp.ndarray:
    """``start > 0``: ``x`` is the encoder's state before that unit (a
    cached frozen prefix, ``train/frozen_prefix.py``)."""
    encoder = build_encoder(self.encoder_name, dict(self.encoder_kwargs),
                            "encoder")
    features = encoder(x, **_from_unit(start))
    return _head(self.num_classes, "head")(features)


def _from_unit(start: int) -> dict:
  """Encoder call kwargs running it from unit ``start`` (none from 0: an
  encoder without units is called as it always was)."""
  return {"start": int(start)} if start else {}


class LateFusionClassifier(nn.Module):
  """One encoder per modality, fused at the end.

  ``present`` (B, M) says which modalities each sample has. Input-level
  substitutes (zeros, dataset mean) are applied before the model by
  ``masking.substitute_inputs``; the ``learned`` substitute lives at feature
  level and so is applied here.

  Fusion ``sum_logits`` adds per-modality head logits (the uni-modal ensemble
  form); with ``missing_logits="drop"`` an absent modality's logits are left
  out of the sum, with ``"keep"`` the substitute's logits stay in.
  ``concat_linear`` is a linear head over the concatenated features.

  ``prompted`` (the ``prompts`` method, ``models/prompts.py``): those
  modalities' transformer towers get ``prompt_length`` tokens in each of
  their first ``prompt_depth`` layers, selected by each row's ``present``.
  """

  modalities: Sequence[str]
  encoders: Mapping[str, tuple[str, Mapping[str, Any]]]
  num_classes: int
  fusion: str = "sum_logits"
  substitute: str = "zeros"
  missing_logits: str = "keep"
  prompted: Sequence[str] = ()
  prompt_length: int = 0
  prompt_depth: int = 0

  @nn.compact
  def __call__(self, inputs: Mapping[str, jnp.ndarray] | None,
               present: jnp.ndarray | None, *,
               encoded: Mapping[str, jnp.ndarray] | None = None,
               encode_only: bool = False,
               starts: Mapping[str, int] | None = None):
    """Logits (B, C). Decomposed evaluation (``eval/decomposed.py``) calls
    it in two halves over the same parameters: ``encode_only`` returns the
    encoders' features ``{m: (B, D)}`` of ``inputs``; ``encoded`` skips the
    encoders and fuses the given features (``inputs`` unused). ``starts``
    ``{m: k}``: ``inputs[m]`` is encoder m's state before unit k (a cached
    frozen prefix, ``train/frozen_prefix.py``)."""
    features = []
    for i, m in enumerate(self.modalities):
      name, kwargs = self.encoders[m]
      if encoded is None:
        encoder = build_encoder(name, dict(kwargs), f"{m}_encoder")
        f = encoder(inputs[m], **self._prompt_tokens(m, encoder, present),
                    **_from_unit((starts or {}).get(m, 0)))
      else:
        f = encoded[m]
      if encode_only:
        features.append(f)
        continue
      if self.substitute == "learned":
        token = self.param(
            f"{m}_missing_token",
            nn.with_logical_partitioning(nn.initializers.normal(0.02),
                                         ("embed",)),
            f.shape[-1:])
        f = masking.substitute_features(f, present[:, i], token)
      features.append(f)
    if encode_only:
      return dict(zip(self.modalities, features))

    if self.fusion == "concat_linear":
      return _head(self.num_classes, "fusion_head")(
          jnp.concatenate(features, axis=-1))
    logits = 0.0
    for i, (m, f) in enumerate(zip(self.modalities, features)):
      m_logits = _head(self.num_classes, f"{m}_head")(f)
      if self.missing_logits == "drop":
        m_logits = m_logits * present[:, i, None].astype(m_logits.dtype)
      logits = logits + m_logits
    return logits

  def _prompt_tokens(self, m: str, encoder: nn.Module,
                     present: jnp.ndarray | None) -> dict:
    """``{"extra_tokens": (B, depth, length, width)}`` for a prompted
    modality, else {} (the tower as it is)."""
    if m not in self.prompted:
      return {}
    if present is None:
      raise ValueError(
          "A prompted model selects each example's prompts by its presence"
          " pattern: call it with `present`; its encoders cannot run alone"
          " (no decomposed evaluation).")
    table = prompts.table(self, m, len(self.modalities), self.prompt_depth,
                          self.prompt_length, encoder.width)
    return {"extra_tokens": prompts.select(table, present)}
