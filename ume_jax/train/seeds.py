"""The seed of each training run and the keys and seeds derived from it for
parameter init and data order. (Mask keys: ``ume_jax/missing/keys.py``.)

Each run's seed is ``config.seed`` plus a fixed offset: uni-modal run ``i``
(the ``i``-th modality) gets ``+ i``, every fusion method ``+ 100``. The same
run seed feeds its init, its data order and its augmentation masks.
"""
import jax

FUSION_OFFSET = 100
# Replicate k of a multi-seed run (config.num_seeds) has config.seed + k x
# this: far enough apart that no two runs of any replicates share a seed.
REPLICATE_STRIDE = 1000


def replicate_seed(config_seed: int, k: int) -> int:
  return int(config_seed) + REPLICATE_STRIDE * k


def pretrain_seed(config_seed: int, modality_index: int) -> int:
  return int(config_seed) + modality_index


def fusion_seed(config_seed: int) -> int:
  return int(config_seed) + FUSION_OFFSET


def init_key(run_seed: int) -> jax.Array:
  """Key for parameter init. 'rbg' because XLA:CPU compiles threefry's
  unrolled rounds slowly (see the README's notes on start-up); values do not
  depend on the mesh (tested)."""
  return jax.random.key(run_seed, impl="rbg")


def data_order_seed(run_seed: int) -> int:
  """Seed of the input pipeline's per-epoch shuffle."""
  return int(run_seed)
