"""The mask keys (ume_jax/missing/keys.py).

The augmentation masks' bits were computed with the code of commit 1cb00e2,
before the keys had one home: MMA draws the masks it always drew."""
import jax
import jax.numpy as jnp
import numpy as np

from ume_jax.missing import keys, masking

INDEX = jnp.arange(64)


def _bits(mask):
  return np.packbits(np.asarray(mask).ravel()).tolist()


def test_augmentation_masks_are_unchanged():
  key = keys.augmentation_key(100, 3)   # run seed 100, step 3
  mask = masking.train_present(key, jnp.ones((64, 2), bool), (0.5, 0.5))
  assert _bits(mask) == [89, 175, 87, 169, 101, 154, 231, 102, 231, 127,
                         166, 218, 91, 109, 239, 217]


def test_protocol_keys_depend_on_seed_type_and_index_only():
  data = lambda k: np.asarray(jax.random.key_data(k))
  a = keys.protocol_keys(1, 0, INDEX)
  assert a.shape == (64,)
  assert not np.array_equal(data(a), data(keys.protocol_keys(1, 1, INDEX)))
  assert not np.array_equal(data(a), data(keys.protocol_keys(2, 0, INDEX)))
  # Example 10's key is the same alone as inside a batch.
  np.testing.assert_array_equal(data(keys.protocol_keys(1, 0, INDEX[10:11]))[0],
                                data(a)[10])
