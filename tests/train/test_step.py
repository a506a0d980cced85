"""Train step with frozen parameters (ume_jax/train/step.py + optim.frozen_mask)."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ume_jax.train import optim
from ume_jax.train import step as step_lib
from ume_jax.train.state import TrainState


def _cfg(rules):
  return ml_collections.ConfigDict(dict(
      name="sgd", learning_rate=0.5, warmup_steps=0, weight_decay=0.0,
      momentum=0.0, grad_clip_norm=1.0, lr_multipliers=rules))


def _logits(params, batch, key):
  del key
  h = jnp.tanh(batch["x"] @ params["lower"]["w"])
  return h @ params["upper"]["w"]


def _setup(rules):
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  params = {"lower": {"w": jax.random.normal(k1, (4, 5))},
            "upper": {"w": jax.random.normal(k2, (5, 3))}}
  batch = {"x": jax.random.normal(k3, (8, 4)),
           "label": jnp.arange(8) % 3}
  cfg = _cfg(rules)
  tx = optim.make_optimizer(cfg, total_steps=10)
  state = TrainState(step=jnp.zeros((), jnp.int32), params=params,
                     opt_state=tx.init(params))
  return state, batch, tx, cfg


def test_frozen_mask_follows_zero_multipliers():
  params = {"text_encoder": {"layer_0": {"w": 0}, "layer_5": {"w": 0}},
            "text_head": {"w": 0}}
  cfg = _cfg(((r".*layer_[0-3]/.*", 0.0), (r".*_encoder/.*", 0.1)))
  mask = optim.frozen_mask(params, cfg)
  assert mask == {"text_encoder": {"layer_0": {"w": True},
                                   "layer_5": {"w": False}},
                  "text_head": {"w": False}}


def test_frozen_parameters_stay_and_others_match_full_gradient_step():
  rules = ((r"lower/.*", 0.0),)
  state, batch, tx, cfg = _setup(rules)
  frozen = optim.frozen_mask(state.params, cfg)
  step = jax.jit(step_lib.make_train_step(_logits, tx, multilabel=False, seed=0,
                                       frozen=frozen))
  new, out = step(state, batch)
  np.testing.assert_array_equal(new.params["lower"]["w"],
                                state.params["lower"]["w"])
  # The trainable part moves exactly as without the mask (the optimizer
  # zeroes the frozen group's update either way); the reported gradient
  # norm covers the trainable parameters only.
  ref, ref_out = jax.jit(step_lib.make_train_step(
      _logits, tx, multilabel=False, seed=0))(state, batch)
  np.testing.assert_allclose(new.params["upper"]["w"],
                             ref.params["upper"]["w"], rtol=1e-6)
  assert not np.allclose(new.params["upper"]["w"],
                         state.params["upper"]["w"])
  np.testing.assert_allclose(out["loss"], ref_out["loss"], rtol=1e-6)
  assert float(out["grad_norm"]) < float(ref_out["grad_norm"])


def test_frozen_step_computes_no_gradient_below_trainable_layers():
  # The frozen layer's weight gradient is not part of the compiled step:
  # with it frozen, the lowered program has fewer dot products.
  def dots(frozen):
    state, batch, tx, cfg = _setup(((r"lower/.*", 0.0),))
    mask = optim.frozen_mask(state.params, cfg) if frozen else None
    fn = step_lib.make_train_step(_logits, tx, multilabel=False, seed=0,
                               frozen=mask)
    return jax.jit(fn).lower(state, batch).as_text().count("dot_general")
  assert dots(frozen=True) < dots(frozen=False)
