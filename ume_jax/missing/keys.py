"""The random keys every missing-modality mask is drawn from, one function per
purpose. No other module derives a mask key.

All are threefry keys, whose streams are specified bit for bit, so a mask
depends only on its seed and on where it is drawn (step, modality, example),
never on the device layout, the batch size or the process count.
"""
import jax
import jax.numpy as jnp


def augmentation_key(run_seed: int, step: jax.Array) -> jax.Array:
  """Key of step ``step``'s augmentation (MMA) masks in one training run.

  Folded with the step, so resuming from a checkpoint replays exactly the
  masks an uninterrupted run would have drawn.
  """
  return jax.random.fold_in(jax.random.key(run_seed), step)


def protocol_keys(seed: int, type_number: int, index: jnp.ndarray
                  ) -> jax.Array:
  """(B,) keys ranking the examples ``index`` of a split for one missing
  type (``protocol.py``): evaluation masks use ``eval.mask_seed``, the
  training set's missingness ``train_missing.seed``."""
  base = jax.random.fold_in(jax.random.key(seed), type_number)
  return jax.vmap(lambda i: jax.random.fold_in(base, i))(index)
