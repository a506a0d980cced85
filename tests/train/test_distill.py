"""umt's feature distillation toward frozen uni-modal teachers
(ume_jax/train/distill.py, its method in ume_jax/methods.py)."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from tests import fakes as fx
from ume_jax.train import distill, optim, seeds, trainer

MODS = fx.SPEC.modalities


def _umt(config=None):
  method = fx.fusion(config or fx.tiny_config(), fx.SPEC, "umt")
  return method, nn.meta.unbox(method.boxed_params(seeds.init_key(0)))


def _as_teacher_of(params):
  """``params`` with each teacher a copy of its student encoder."""
  return {**params, distill.TEACHER: {m: params[f"{m}_encoder"]
                                      for m in MODS}}


def _distill(method, params, batch):
  return method.train_terms(params, batch, None)[1]["distill"]


def test_the_loss_is_zero_when_student_is_teacher_and_positive_otherwise():
  method, params = _umt()
  batch = fx.batch(16)
  assert float(_distill(method, _as_teacher_of(params), batch)) == 0.0
  assert float(_distill(method, params, batch)) > 0.1
  # One teacher differs: only its modality contributes.
  one = _as_teacher_of(params)
  one[distill.TEACHER]["audio"] = params[distill.TEACHER]["audio"]
  assert 0.0 < float(_distill(method, one, batch)) < float(
      _distill(method, params, batch))


def test_modalities_an_example_lacks_are_not_distilled():
  student = {"image": jnp.ones((3, 2)), "audio": jnp.zeros((3, 2))}
  teacher = {"image": jnp.ones((3, 2)),
             "audio": jnp.array([[2.0, 2.0], [1e6, 1e6], [0.0, 0.0]])}
  present = jnp.array([[True, True], [True, False], [True, True]])
  # Audio over its 2 present rows: (4 + 0) / 2; the absent row's 1e6 and
  # the fully matching image add nothing.
  assert float(distill.feature_mse(student, teacher, present, MODS)) == 2.0
  nobody = present.at[:, 1].set(False)
  assert float(distill.feature_mse(student, teacher, nobody, MODS)) == 0.0


def test_no_gradient_reaches_the_teacher():
  method, params = _umt()
  batch = fx.batch(16)
  grads = jax.grad(lambda p: _distill(method, p, batch))(params)
  teacher = jax.tree.leaves(grads[distill.TEACHER])
  assert teacher and all(not np.any(np.asarray(g)) for g in teacher)
  for m in MODS:   # the student's encoders are what the loss moves
    assert any(np.any(np.asarray(g))
               for g in jax.tree.leaves(grads[f"{m}_encoder"]))


def test_the_teachers_are_frozen_whatever_the_config():
  method, params = _umt()
  config = fx.tiny_config()
  cfg = trainer.optim_config(method, config.scratch)
  mask = optim.frozen_mask(params, cfg)
  assert all(jax.tree.leaves(mask[distill.TEACHER]))
  assert not any(jax.tree.leaves({k: v for k, v in mask.items()
                                  if k != distill.TEACHER}))
  # No optimizer state is kept for them.
  state = optim.make_optimizer(cfg, 10).init(params)
  assert sum(x.size for x in jax.tree.leaves(state)) < 3 * sum(
      x.size for k, v in params.items() if k != distill.TEACHER
      for x in jax.tree.leaves(v))


def test_training_steps_leave_the_teacher_bit_identical():
  """A few jitted, sharded train steps as a umt stage runs them (weight
  decay on): the student moves, the teacher does not by a single bit."""
  config = fx.tiny_config()
  config.scratch.optim.weight_decay = 0.1
  method, _ = _umt(config)
  before, after, scalars = fx.train_steps(
      method, config, config.scratch, [fx.batch(16, seed=i) for i in range(3)])
  for a, b in zip(jax.tree.leaves(before[distill.TEACHER]),
                  jax.tree.leaves(after[distill.TEACHER])):
    assert a.tobytes() == b.tobytes()
  for m in MODS:
    assert any(not np.array_equal(a, b) for a, b in zip(
        jax.tree.leaves(before[f"{m}_encoder"]),
        jax.tree.leaves(after[f"{m}_encoder"])))
  assert scalars["distill_loss"] > 0
  np.testing.assert_allclose(scalars["loss"], scalars["task_loss"]
                             + scalars["distill_loss"], rtol=1e-6)


def test_with_frozen_puts_the_paths_first():
  cfg = {"name": "adamw", "lr_multipliers": ((r".*", 0.5),)}
  out = optim.with_frozen(cfg, (r"teacher/.*",))
  assert out["lr_multipliers"] == ((r"teacher/.*", 0.0), (r".*", 0.5))
  assert optim.with_frozen(cfg, ()) is cfg
