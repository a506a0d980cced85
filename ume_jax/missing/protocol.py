"""The field's missing-modality protocol: a missing ratio eta and a missing
*type*, applied to a whole split with exact counts.

This is the setting of missing-aware prompts (MAP, CVPR'23) and its
successors. A type is:

- a modality ``m``: round(eta N) of the N examples of the split lack ``m``;
- ``both`` (two modalities) / ``mixed`` (any number M): round(eta N)
  examples each lack one modality, spread evenly - for two modalities eta/2
  lack each, MAP's ``both``; for M >= 3, eta/M lack each (our
  generalisation);
- an explicit mix ``{m: fraction}`` (training only): exclusive sets,
  round(fraction N) examples lacking each ``m``.

Which examples: every example of a split gets a rank, its position in a
seeded permutation of the split (``keys.protocol_keys``: depends on the seed,
the type and the example's index only). The first round(eta N) ranks are
missing, and under ``both`` rank r lacks the type's ``r mod M``-th modality,
so the sets at a smaller eta are subsets of those at a larger one and the
counts are exact (equal per modality to within one example).
"""
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ume_jax.missing import keys

SPREAD_TYPES = ("both", "mixed")


class ProtocolError(ValueError):
  """A missing type or ratio the dataset cannot have."""


def canonical_type(name: str, modalities: Sequence[str]) -> str:
  """``both`` for two modalities, ``mixed`` for more; modality names as
  they are. Raises ProtocolError for anything else."""
  if name in modalities:
    return name
  if name in SPREAD_TYPES:
    return "both" if len(modalities) == 2 else "mixed"
  raise ProtocolError(
      f"missing type {name!r}: expected a modality of {list(modalities)} or"
      f" one of {list(SPREAD_TYPES)} (each missing example lacks one"
      " modality, spread evenly).")


def type_modalities(name: str, modalities: Sequence[str]) -> tuple[int, ...]:
  """Indices of the modalities that examples missing under type ``name``
  lack, in the order ranks cycle through them."""
  name = canonical_type(name, modalities)
  if name in SPREAD_TYPES:
    return tuple(range(len(modalities)))
  return (list(modalities).index(name),)


def type_id(name: str, modalities: Sequence[str]) -> int:
  """A stable number per type (its permutation's key): modality i -> i,
  the spread type -> M."""
  name = canonical_type(name, modalities)
  return len(modalities) if name in SPREAD_TYPES else list(
      modalities).index(name)


def ranks(seed: int, type_number: int, num_examples: int) -> np.ndarray:
  """(N,) int32: each example's rank in the seeded permutation of a split."""
  u = jax.vmap(jax.random.uniform)(
      keys.protocol_keys(seed, type_number, jnp.arange(num_examples)))
  order = np.argsort(np.asarray(u), kind="stable")
  out = np.empty(num_examples, np.int32)
  out[order] = np.arange(num_examples, dtype=np.int32)
  return out


def count(ratio: float, num_examples: int) -> int:
  """round(ratio N), halves rounded up (not to even): 0.5 of 5 is 3."""
  return int(np.floor(ratio * num_examples + 0.5))


def absent_by_type(seed: int, name: str, ratio: float,
                   modalities: Sequence[str], num_examples: int
                   ) -> np.ndarray:
  """(N, M) bool: which example lacks which modality under (type, eta)."""
  mods = type_modalities(name, modalities)
  rank = ranks(seed, type_id(name, modalities), num_examples)
  missing = rank < count(ratio, num_examples)
  which = np.asarray(mods)[rank % len(mods)]
  out = np.zeros((num_examples, len(modalities)), bool)
  out[np.flatnonzero(missing), which[missing]] = True
  return out


def present_fractions(name: str, ratio: float, modalities: Sequence[str],
                      num_examples: int) -> dict[str, float]:
  """The share of a split's examples that have each modality under (type,
  eta): exact, from the counts ``absent_by_type`` marks."""
  mods = type_modalities(name, modalities)
  missing = count(ratio, num_examples)
  lacking = {m: 0 for m in modalities}
  for i, j in enumerate(mods):
    # Ranks i, i + k, i + 2k, ... below ``missing`` lack modality j.
    lacking[modalities[j]] = max(0, -(-(missing - i) // len(mods)))
  return {m: 1 - lacking[m] / num_examples for m in modalities}


def absent_by_mix(seed: int, mix: Mapping[str, float],
                  modalities: Sequence[str], num_examples: int) -> np.ndarray:
  """(N, M) bool for an explicit mix: consecutive blocks of ranks, the
  first round(f_1 N) lacking the first listed modality, and so on."""
  total = sum(float(f) for f in mix.values())
  if total > 1.0 + 1e-9 or any(float(f) < 0 for f in mix.values()):
    raise ProtocolError(f"missing mix {dict(mix)}: fractions must be >= 0"
                        f" and sum to at most 1 (they sum to {total:g}).")
  rank = ranks(seed, len(modalities) + 1, num_examples)
  out = np.zeros((num_examples, len(modalities)), bool)
  start = 0
  for m, f in mix.items():
    if m not in modalities:
      raise ProtocolError(f"missing mix {dict(mix)}: {m!r} is not a"
                          f" modality of {list(modalities)}.")
    stop = start + count(float(f), num_examples)
    out[(rank >= start) & (rank < stop), list(modalities).index(m)] = True
    start = stop
  return out
