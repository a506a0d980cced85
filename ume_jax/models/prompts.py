"""Missing-aware prompts (Lee et al., CVPR'23): one set of learnable prompt
tokens per presence pattern, entering the transformer towers.

An example's presence pattern (which modalities it has) selects its prompt
set: with M modalities there are 2**M patterns (code ``sum_i present_i <<
i``, ``eval/pattern_choice.py``'s), e.g. for image + text: none,
image-only (text missing), text-only (image missing), full. Lee et al. keep
three (full, text missing, image missing); the all-absent set is kept too
so that every pattern has its own and three-modality datasets need nothing
special (an all-absent example is never scored, so that set never trains).

Each prompted tower gets its own table ``<m>_prompts`` of shape
``(2**M, depth, length, width)``; the selected ``(B, depth, length, width)``
goes to the tower's ``extra_tokens`` hook (``transformer.stack``): fresh
tokens in front of each of its first ``depth`` layers (VPT-deep, as Lee et
al.'s ViLT prompts). A tower without that hook (a CNN) gets none.
"""
import inspect
from typing import Mapping, Sequence

import flax.linen as nn
import jax.numpy as jnp

from ume_jax.config import rules
from ume_jax.models.registry import build_encoder

# The ``prompts`` config section (Lee et al.'s defaults: 16 tokens in each
# of the first 6 layers).
CONFIG_KEYS = {"length": rules.integer(1), "depth": rules.integer(1)}
DEFAULTS = {"length": 16, "depth": 6}
SUFFIX = "_prompts"
# Patterns are replicated; the width splits as every tower's "embed" does.
AXES = ("prompt_patterns", "prompt_layers", "prompt_tokens", "embed")


def num_patterns(num_modalities: int) -> int:
  return 1 << num_modalities


def pattern_codes(present: jnp.ndarray) -> jnp.ndarray:
  """(B,) int32 pattern code of each row of ``present`` (B, M) bool."""
  weights = jnp.asarray([1 << i for i in range(present.shape[-1])],
                        jnp.int32)
  return (present.astype(jnp.int32) * weights).sum(-1)


def select(table: jnp.ndarray, present: jnp.ndarray) -> jnp.ndarray:
  """Each example's prompts: ``table`` (2**M, N, P, W) rows picked by the
  pattern of ``present`` (B, M) -> (B, N, P, W)."""
  return jnp.take(table, pattern_codes(present), axis=0)


def takes_prompts(encoder: nn.Module) -> bool:
  """Whether the (unbound) encoder module has the ``extra_tokens`` hook."""
  return "extra_tokens" in inspect.signature(type(encoder).__call__).parameters


def prompted_modalities(encoders: Mapping[str, tuple[str, Mapping]],
                        modalities: Sequence[str]) -> tuple[str, ...]:
  """The modalities whose encoder ``(name, kwargs)`` takes prompt tokens."""
  return tuple(m for m in modalities
               if takes_prompts(build_encoder(encoders[m][0],
                                              dict(encoders[m][1]))))


def check(encoders: Mapping[str, tuple[str, Mapping]],
          modalities: Sequence[str], depth: int) -> tuple[str, ...]:
  """The prompted modalities, after checking the method can be built."""
  prompted = prompted_modalities(encoders, modalities)
  if not prompted:
    raise ValueError(
        "Method 'prompts' needs at least one transformer encoder with the"
        " extra_tokens hook (clip_vision, clip_text, vit, bert); the"
        f" encoders here are {[encoders[m][0] for m in modalities]}, so"
        " there is nowhere to put the prompts. Use transformer towers (e.g."
        " the ':clip' configs) or leave 'prompts' out of config.methods.")
  for m in prompted:
    tower_depth = build_encoder(encoders[m][0], dict(encoders[m][1])).depth
    if depth > tower_depth:
      raise ValueError(
          f"prompts.depth={depth} asks for prompts in more layers than the"
          f" {m} tower ({encoders[m][0]}) has ({tower_depth}); set"
          f" --config.prompts.depth to at most {tower_depth}.")
  return prompted


def table(module: nn.Module, modality: str, num_modalities: int,
          depth: int, length: int, width: int) -> jnp.ndarray:
  """The ``<modality>_prompts`` parameter of ``module`` (call it from an
  ``@nn.compact`` method); CLIP's embedding init scale."""
  return module.param(
      f"{modality}{SUFFIX}",
      nn.with_logical_partitioning(nn.initializers.normal(0.02), AXES),
      (num_patterns(num_modalities), depth, length, width))
