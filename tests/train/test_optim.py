"""Optimiser construction (ume_jax/train/optim.py)."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from ume_jax.train import optim


def _cfg(**kw):
  base = dict(name="sgd", learning_rate=0.1, warmup_steps=0, weight_decay=0.0,
              momentum=0.0, grad_clip_norm=0.0, lr_multipliers=())
  base.update(kw)
  return ml_collections.ConfigDict(base)


def _one_update(cfg, params):
  tx = optim.make_optimizer(cfg, total_steps=100)
  grads = jax.tree.map(jnp.ones_like, params)
  updates, _ = tx.update(grads, tx.init(params), params)
  return updates


def test_regex_multipliers_scale_and_freeze():
  params = {"image_encoder": {"conv0": {"kernel": jnp.zeros(3)}},
            "image_head": {"kernel": jnp.zeros(3)},
            "audio_encoder": {"proj": {"kernel": jnp.zeros(3)}}}
  cfg = _cfg(lr_multipliers=((r"image_encoder/.*", 0.1),
                             (r"audio_.*", 0.0)))
  up = _one_update(cfg, params)
  # Step 0 of cosine-from-peak with no warm-up: lr = peak * multiplier.
  np.testing.assert_allclose(up["image_head"]["kernel"], -0.1, rtol=1e-6)
  np.testing.assert_allclose(up["image_encoder"]["conv0"]["kernel"], -0.01,
                             rtol=1e-6)
  np.testing.assert_array_equal(up["audio_encoder"]["proj"]["kernel"], 0.0)


def test_first_matching_rule_wins():
  rules = [(r".*_encoder/.*", 0.5), (r"image_encoder/.*", 0.0)]
  assert optim.group_of("image_encoder/conv0/kernel", rules) == 0
  assert optim.group_of("image_head/kernel", rules) == 2


def test_clipping_bounds_update_norm():
  params = {"w": jnp.zeros(100)}
  cfg = _cfg(grad_clip_norm=1.0, learning_rate=1.0)
  up = _one_update(cfg, params)  # raw gradient norm is 10
  np.testing.assert_allclose(optax.tree.norm(up), 1.0, rtol=1e-5)


def test_warmup_then_cosine():
  cfg = _cfg(name="adamw", learning_rate=1e-3, warmup_steps=10)
  sched = optim._schedule(cfg, 1.0, 100)
  assert float(sched(0)) == 0.0
  np.testing.assert_allclose(float(sched(10)), 1e-3, rtol=1e-6)
  assert float(sched(55)) < 1e-3 and float(sched(100)) < 1e-6
