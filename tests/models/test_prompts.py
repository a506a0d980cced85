"""The missing-aware prompts baseline (ume_jax/models/prompts.py, the
``prompts`` method of ume_jax/methods.py): each example's prompts are its
presence pattern's, and training moves the prompts and heads only."""
import jax
import numpy as np
import pytest

from tests import fakes as fx
from ume_jax import experiment
from ume_jax.config import common
from ume_jax.models import prompts
from ume_jax.train import seeds

# 16 rows (the test mesh's 8 devices divide them): full, image missing,
# text missing.
PRESENT = np.repeat([[True, True], [False, True], [True, False]], (6, 5, 5),
                    axis=0)
IMAGE_MISSING = 0b10   # text (bit 1) present, image (bit 0) absent


def _method_and_params(config=None):
  method = fx.fusion(config or fx.tiny_tower_config(), fx.TOWER_SPEC,
                     "prompts")
  boxed = method.boxed_params(seeds.init_key(0))
  return method, jax.tree.map(lambda p: p.value, boxed,
                              is_leaf=lambda p: hasattr(p, "value"))


def test_pattern_codes_and_selection():
  codes = np.asarray(prompts.pattern_codes(PRESENT))
  np.testing.assert_array_equal(codes, [3] * 6 + [2] * 5 + [1] * 5)
  table = np.arange(4)[:, None, None, None] * np.ones((4, 2, 3, 5))
  picked = np.asarray(prompts.select(table, PRESENT))
  assert picked.shape == (16, 2, 3, 5)
  np.testing.assert_array_equal(picked[:, 0, 0, 0], codes)


def test_an_example_gets_the_prompts_of_its_presence_pattern():
  method, params = _method_and_params()
  assert {f"{m}_prompts" for m in ("image", "text")} <= set(params)
  assert params["image_prompts"].shape == (4, 2, 3, 32)
  batch = fx.tower_batch(16, present=PRESENT)
  logits = np.asarray(method.eval_logits(params, batch, PRESENT))
  # New prompts for the image-missing case, in both towers.
  changed = dict(params)
  for i, m in enumerate(("image", "text")):
    fresh = jax.random.normal(jax.random.key(5 + i),
                              params[f"{m}_prompts"].shape[1:])
    changed[f"{m}_prompts"] = params[f"{m}_prompts"].at[IMAGE_MISSING].set(
        fresh)
  other = np.asarray(method.eval_logits(changed, batch, PRESENT))
  hit = prompts.pattern_codes(PRESENT) == IMAGE_MISSING
  np.testing.assert_allclose(other[~hit], logits[~hit], atol=1e-6)
  assert np.abs(other[hit] - logits[hit]).min() > 1e-5
  # Training reads the run's training-time missingness the same way.
  np.testing.assert_allclose(
      np.asarray(method.train_logits(params, batch, jax.random.key(0))),
      logits, atol=1e-6)


def test_training_steps_move_only_the_prompts_and_heads():
  """Jitted, sharded steps as the finetune stage runs them (weight decay
  on, the config's own 0.1 encoder multiplier): every tower parameter
  stays bit-identical, every prompt table and head moves."""
  config = fx.tiny_tower_config()
  config.finetune.optim.weight_decay = 0.1
  method, _ = _method_and_params(config)
  before, after, _ = fx.train_steps(method, config, config.finetune, [
      fx.tower_batch(16, seed=i, present=PRESENT) for i in range(3)])
  for name in before:
    pairs = list(zip(jax.tree.leaves(before[name]),
                     jax.tree.leaves(after[name])))
    if name.endswith("_encoder"):
      assert all(a.tobytes() == b.tobytes() for a, b in pairs), name
    else:   # <m>_prompts, <m>_head
      assert name.endswith(("_prompts", "_head")), name
      assert all(not np.array_equal(a, b) for a, b in pairs), name


def test_only_transformer_towers_get_prompts():
  c = fx.tiny_tower_config()
  c.model.encoders["image"] = common.encoder("image_cnn", dict(
      channels=(4,), strides=(2,), feature_dim=8))
  encoders = {m: (e["name"], e["kwargs"])
              for m, e in c.model.encoders.items()}
  assert prompts.prompted_modalities(encoders, ("image", "text")) == (
      "text",)
  method, params = _method_and_params(c)
  assert method.fingerprint["prompts"]["modalities"] == ["text"]
  assert "text_prompts" in params and "image_prompts" not in params


def test_configs_without_towers_or_too_deep_prompts_are_refused():
  with pytest.raises(ValueError, match="extra_tokens hook"):
    fx.fusion(fx.tiny_config(), fx.SPEC, "prompts")
  c = fx.tiny_tower_config()
  c.prompts.depth = 3
  with pytest.raises(ValueError, match="prompts.depth=3"):
    fx.fusion(c, fx.TOWER_SPEC, "prompts")


def test_prompts_start_from_the_unimodal_checkpoints():
  config = fx.tiny_tower_config()
  config.methods = ("mma", "prompts")
  runs = {r.method.name: r for r in experiment.training_runs(
      experiment.Setup(config, None, None, experiment.build_methods(
          config, fx.TOWER_SPEC)), "/tmp/unused")}
  assert runs["prompts"].section == "finetune"
  assert set(runs["prompts"].upstream) == {"image", "text"}
