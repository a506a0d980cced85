"""Fine-tuning starts from the uni-modal checkpoints: parameters only.

The late-fusion model names its parameters ``<m>_encoder`` / ``<m>_head``;
a uni-modal model names them ``encoder`` / ``head``. Loading is a rename, and
restoring onto the fusion model's own abstract parameters places each array
directly on the shardings the fusion model uses. The optimizer stays fresh.
"""
from typing import Mapping

import jax

from ume_jax.infra import checkpoint
from ume_jax.methods import Method


def load_into_fusion(params: dict, *,
                     unimodal: Mapping[str, tuple[str, Method]],
                     load_heads: bool) -> dict:
  """Returns ``params`` with encoders (and heads) from uni-modal checkpoints.

  ``unimodal``: modality -> (checkpoint directory, its uni-modal method).
  ``load_heads`` is True for ``sum_logits`` fusion, whose per-modality heads
  have the uni-modal heads' shapes; ``concat_linear`` has one new head.
  """
  params = dict(params)
  for m, (directory, method) in unimodal.items():
    wanted = {"encoder": params[f"{m}_encoder"]}
    if load_heads:
      wanted["head"] = params[f"{m}_head"]
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
        wanted)
    loaded, _ = checkpoint.restore_params(directory, method.fingerprint,
                                          abstract)
    params[f"{m}_encoder"] = loaded["encoder"]
    if load_heads:
      params[f"{m}_head"] = loaded["head"]
  return params
