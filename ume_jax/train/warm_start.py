"""Fine-tuning starts from the uni-modal checkpoints: parameters only.

The late-fusion model names its parameters ``<m>_encoder`` / ``<m>_head``;
a uni-modal model names them ``encoder`` / ``head``. Loading is a rename, and
restoring onto the fusion model's own abstract parameters places each array
directly on the shardings the fusion model uses. The optimizer stays fresh.
``umt``'s frozen teachers (``distill.TEACHER``) are loaded the same way.
"""
from typing import Mapping

import jax

from ume_jax.infra import checkpoint
from ume_jax.methods import Method
from ume_jax.train import distill, validation


def _restore(run_dir: str, method: Method, select: str, wanted: dict
             ) -> dict:
  """``wanted`` (arrays naming the shapes and shardings to restore onto)
  read from the ``select`` checkpoint of the uni-modal run in ``run_dir``."""
  directory, _ = validation.chosen(run_dir, select)
  abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
      wanted)
  loaded, _ = checkpoint.restore_params(directory, method.fingerprint,
                                        abstract)
  return loaded


def load_into_fusion(params: dict, *,
                     unimodal: Mapping[str, tuple[str, Method]],
                     load_heads: bool, select: str = "last",
                     temperatures=None) -> dict:
  """Returns ``params`` with encoders (and heads) from uni-modal checkpoints.

  ``unimodal``: modality -> (run directory, its uni-modal method); each
  run's ``select`` checkpoint is read (``validation.chosen``: its best or
  its last). ``load_heads`` is True for ``sum_logits`` fusion, whose
  per-modality heads have the uni-modal heads' shapes; ``concat_linear``
  has one new head. ``temperatures`` (``{m: T}``, or a function returning
  them, called once) divides each loaded head by its model's temperature,
  so the fusion model starts as the calibrated ensemble.
  """
  if callable(temperatures):
    temperatures = temperatures()
  params = dict(params)
  for m, (run_dir, method) in unimodal.items():
    wanted = {"encoder": params[f"{m}_encoder"]}
    if load_heads:
      wanted["head"] = params[f"{m}_head"]
    loaded = _restore(run_dir, method, select, wanted)
    params[f"{m}_encoder"] = loaded["encoder"]
    if load_heads:
      scale = 1.0 / float((temperatures or {}).get(m, 1.0))
      params[f"{m}_head"] = jax.tree.map(lambda x: x * scale, loaded["head"])
  return params


def load_teachers(params: dict, *, unimodal: Mapping[str, tuple[str, Method]],
                  select: str = "last") -> dict:
  """Returns ``params`` with ``umt``'s teachers (``params[distill.TEACHER]
  [m]``) replaced by the uni-modal encoders of the ``select`` checkpoints
  (``unimodal`` as in ``load_into_fusion``); the student is left as is."""
  teachers = dict(params[distill.TEACHER])
  for m, (run_dir, method) in unimodal.items():
    teachers[m] = _restore(run_dir, method, select,
                           {"encoder": teachers[m]})["encoder"]
  return {**params, distill.TEACHER: teachers}
