"""Mesh, parameter sharding and the sharded train step (ume_jax/infra/mesh.py)."""
import jax
import numpy as np
import pytest

from tests import fakes as fx
from ume_jax import methods
from ume_jax.train import optim
from ume_jax.infra import mesh as mesh_lib
from ume_jax.train import step as step_lib
from ume_jax.train import seeds, trainer


def test_mesh_fill_and_errors():
  assert dict(mesh_lib.build_mesh({"data": -1, "fsdp": 2}).shape) == {
      "data": 4, "fsdp": 2}
  assert dict(mesh_lib.build_mesh({"data": 1, "fsdp": -1}).shape) == {
      "data": 1, "fsdp": 8}
  with pytest.raises(ValueError, match="cannot fill"):
    mesh_lib.build_mesh({"data": -1, "fsdp": 3})
  with pytest.raises(ValueError, match="needs 4 devices"):
    mesh_lib.build_mesh({"data": 2, "fsdp": 2})


def _run_steps(mesh, num_steps=3):
  config = fx.tiny_config()
  method = fx.fusion(config, fx.SPEC, "mma")
  tx = optim.make_optimizer(config.finetune.optim, 10)
  init_fn, state_sh = trainer.plan_state(method, tx, mesh)
  state = init_fn(seeds.init_key(0))
  batch_sh = mesh_lib.batch_sharding(mesh)
  step = jax.jit(step_lib.make_train_step(method.train_logits, tx,
                                       multilabel=False, seed=0),
                 in_shardings=(state_sh, batch_sh),
                 out_shardings=(state_sh, mesh_lib.replicated(mesh)))
  losses = []
  for i in range(num_steps):
    b = jax.device_put(fx.batch(16, seed=i), batch_sh)
    state, m = step(state, b)
    losses.append(float(m["loss"]))
  return state, losses


def test_sharded_step_equals_single_device_step():
  state8, losses8 = _run_steps(mesh_lib.build_mesh({"data": 4, "fsdp": 2}))
  state1, losses1 = _run_steps(
      mesh_lib.build_mesh({"data": 1, "fsdp": 1}, jax.devices()[:1]))
  np.testing.assert_allclose(losses8, losses1, rtol=1e-5)
  assert losses8[0] != losses8[-1]  # parameters really moved
  jax.tree.map(lambda a, b: np.testing.assert_allclose(
      np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6),
      state8.params, state1.params)
  kernel = state8.params["image_encoder"]["proj"]["kernel"]
  assert kernel.sharding.spec[0] == "fsdp"  # the 'flat' axis is split
  assert len({str(s.index) for s in kernel.addressable_shards}) == 2


def test_params_split_over_fsdp_axis():
  mesh = mesh_lib.build_mesh({"data": 2, "fsdp": 4})
  method = fx.fusion(fx.tiny_config(), fx.SPEC, "late_fusion")
  abstract = methods.abstract_params(method, mesh)
  summary = mesh_lib.sharding_summary(
      abstract, jax.tree.map(lambda x: x.sharding, abstract))
  assert summary["sharded_bytes"] > summary["replicated_bytes"] > 0
  # A head of 32 features x 4 classes: 'embed' (32) divides by 4 -> split.
  head = abstract["image_head"]["kernel"].sharding.spec
  assert head[0] == "fsdp" and (len(head) < 2 or head[1] is None)
