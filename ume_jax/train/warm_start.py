"""Fine-tuning starts from the uni-modal checkpoints: parameters only.

The late-fusion model names its parameters ``<m>_encoder`` / ``<m>_head``;
a uni-modal model names them ``encoder`` / ``head``. Loading is a rename, and
restoring onto the fusion model's own abstract parameters places each array
directly on the shardings the fusion model uses. The optimizer stays fresh.
"""
import os
from typing import Any, Mapping

import jax

from ume_jax.infra import checkpoint
from ume_jax.methods import Method


def unimodal_dir(root: str, modality: str) -> str:
  return os.path.join(root, "pretrain", modality)


def load_into_fusion(params: dict, *, pretrain_root: str,
                     unimodal_methods: Mapping[str, Method],
                     load_heads: bool) -> dict:
  """Returns ``params`` with encoders (and heads) from uni-modal checkpoints.

  ``load_heads`` is True for ``sum_logits`` fusion, whose per-modality heads
  have the uni-modal heads' shapes; ``concat_linear`` has one new head.
  """
  params = dict(params)
  for m, method in unimodal_methods.items():
    wanted = {"encoder": params[f"{m}_encoder"]}
    if load_heads:
      wanted["head"] = params[f"{m}_head"]
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
        wanted)
    loaded, _ = checkpoint.restore_params(
        unimodal_dir(pretrain_root, m), method.fingerprint, abstract)
    params[f"{m}_encoder"] = loaded["encoder"]
    if load_heads:
      params[f"{m}_head"] = loaded["head"]
  return params


def load_params(directory: str, method: Method, abstract_params: Any) -> Any:
  """Latest parameters of ``method`` saved in ``directory`` (for eval)."""
  params, _ = checkpoint.restore_params(directory, method.fingerprint,
                                           abstract_params)
  return params
