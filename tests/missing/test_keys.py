"""The mask keys (ume_jax/missing/keys.py) draw exactly the masks the
project drew before they had one home: these bits were computed with the
code of commit 1cb00e2 (masks derived in steps.py, scenarios.py and
masking.py), so a run's masks - and its numbers - did not move."""
import jax
import jax.numpy as jnp
import numpy as np

from ume_jax.missing import keys, masking, scenarios

INDEX = jnp.arange(64)


def _bits(mask):
  return np.packbits(np.asarray(mask).ravel()).tolist()


def test_training_missingness_is_unchanged():
  mask = masking.permanently_present(7, INDEX, (0.3, 0.6))
  assert _bits(mask) == [165, 122, 153, 186, 150, 187, 170, 234, 191, 190,
                         127, 166, 110, 170, 174, 182]


def test_evaluation_masks_are_unchanged():
  s = scenarios.build_scenarios(("image", "audio"), (0.5,))[4]
  assert s.name == "missing_rate:audio:0.5"
  mask = scenarios.present_mask(scenarios.scenario_arrays(s), INDEX, 20231010)
  assert _bits(mask) == [187, 190, 251, 239, 186, 191, 175, 235, 251, 170,
                         170, 255, 238, 191, 174, 235]


def test_augmentation_masks_are_unchanged():
  key = keys.augmentation_key(100, 3)   # run seed 100, step 3
  mask = masking.train_present(key, jnp.ones((64, 2), bool), (0.5, 0.5))
  assert _bits(mask) == [89, 175, 87, 169, 101, 154, 231, 102, 231, 127,
                         166, 218, 91, 109, 239, 217]


def test_evaluation_keys_depend_on_the_modality_not_the_batch():
  data = lambda k: np.asarray(jax.random.key_data(k))
  a = keys.evaluation_keys(1, jnp.int32(0), INDEX)
  assert not np.array_equal(data(a),
                            data(keys.evaluation_keys(1, jnp.int32(1), INDEX)))
  # Example 10's key is the same alone as inside a batch.
  np.testing.assert_array_equal(
      data(keys.evaluation_keys(1, jnp.int32(0), INDEX[10:11]))[0],
      data(a)[10])
