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


def evaluation_keys(mask_seed: int, rate_modality: jax.Array,
                    index: jnp.ndarray) -> jax.Array:
  """(B,) keys of an evaluation scenario's draws for examples ``index``.

  The key depends on the modality whose rate is drawn, not on the rate, so
  the examples missing it at rate 0.3 are a subset of those at 0.5.
  """
  base = jax.random.fold_in(jax.random.key(mask_seed),
                            jnp.maximum(rate_modality, 0))
  return jax.vmap(lambda i: jax.random.fold_in(base, i))(index)


def training_missingness_keys(seed: int, num_modalities: int,
                              index: jnp.ndarray) -> jax.Array:
  """(B, M) keys deciding which training examples lack a modality for good.

  One per example and modality: the same examples miss the same modality in
  every epoch, stage and run.
  """
  base = jax.random.key(seed)
  return jax.vmap(lambda i: jax.vmap(
      lambda m: jax.random.fold_in(jax.random.fold_in(base, m), i))(
          jnp.arange(num_modalities)))(index)
