"""UME-MMA on the embedded audio-visual digits dataset (``avdigits``).

Run the whole method (pre-train -> fine-tune -> evaluate):

  python -m ume_jax.main --config=configs/default.py --workdir=/tmp/ume_default

One stage alone: ``--config.stage=pretrain|finetune|eval``. A laptop smoke run
(a few hundred steps in all): ``--config=configs/default.py:small``. The
settings themselves are ``ume_jax.config.common.base()``, which every other
config starts from.
"""
from ume_jax.config import common


def get_config(arg=None):
  variants = common.parse_variants(arg, ("small",), "configs/default.py")
  c = common.base()
  if "small" in variants:
    common.smoke_run(c, num_steps=30, batch_size=64)
  return c
