"""Encoders run in units (``start`` / ``stop``, ``num_units``, ``unit_of``):
a trainer caches the output of the frozen lowest units once per example and
runs the rest per step, so the halves must compose to the whole, every
parameter must belong to a unit, and what cannot be cached (prompts) is
refused. Random weights, tiny sizes."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from ume_jax.models import build_encoder
from ume_jax.models.efficientnet import EfficientNetLite0

_SMALL = dict(width=32, depth=2, heads=4, mlp_dim=64)
_TEXT = dict(vocab_size=50, max_positions=16, max_len=16, **_SMALL)
_IMAGE = dict(image_size=16, patch_size=8, **_SMALL)
TOWERS = {
    "bert_pooler": ("bert", dict(_TEXT, pool="pooler", normalize=True)),
    "minilm_mean": ("minilm_l6", _TEXT),
    "clip_text": ("clip_text", dict(_TEXT, projection_dim=8, eos_token_id=49)),
    "clip_text_legacy_eos": ("clip_text", dict(_TEXT, projection_dim=8)),
    "vit_pooler": ("vit", dict(_IMAGE, pool="pooler")),
    "clip_vision_mean": ("clip_vision", dict(_IMAGE, projection_dim=8,
                                             pool="mean")),
}


def _ids():
  """Ends at 49 then padding; a shorter row; an all-padding (absent) row."""
  ids = np.random.default_rng(0).integers(1, 45, size=(3, 10))
  ids[:, 7], ids[:, 8:] = 49, 0
  ids[1, 3], ids[1, 4:] = 49, 0
  ids[2] = 0
  return jnp.asarray(ids, jnp.int32)


def _tower(key):
  name, kwargs = TOWERS[key]
  model = build_encoder(name, kwargs)
  if "image_size" in kwargs:
    x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 16, 16, 3)),
                    jnp.float32)
  else:
    x = _ids()
  return model, model.init(jax.random.key(0), x), x


def _random_params(model, x):
  """He-scaled random weights without compiling ``init`` (EfficientNet's
  takes seconds): a kernel's fan-in is all but its last axis."""
  shapes = nn.meta.unbox(jax.eval_shape(model.init, jax.random.key(0), x))
  rng = np.random.default_rng(0)
  flat = {k: rng.normal(size=v.shape) * (
      np.sqrt(2.0 / np.prod(v.shape[:-1])) if len(v.shape) > 1 else 0.1)
          for k, v in traverse_util.flatten_dict(shapes["params"]).items()}
  return {"params": traverse_util.unflatten_dict(
      {k: jnp.asarray(v, jnp.float32) for k, v in flat.items()})}


def _assert_splits_compose(model, params, x, ks):
  full = model.apply(params, x)
  units = model.num_units()
  np.testing.assert_array_equal(model.apply(params, x, stop=units), full)
  np.testing.assert_array_equal(model.apply(params, full, start=units), full)
  for k in ks:
    state = model.apply(params, x, stop=k)
    assert state.dtype == jnp.float32
    np.testing.assert_allclose(model.apply(params, state, start=k), full,
                               atol=1e-5, err_msg=f"split at unit {k}")
  return full


# Every encoder's top-level parameter names, in the order its units run.
RUN_ORDER = (
    "word_embed", "pos_embed", "type_embed", "ln_embed", "patch_embed",
    "patch_bias", "cls_token", "ln_pre", "layer0", "layer1", "ln_final",
    "pooler", "proj", "stem", *(f"mbconv{i}" for i in range(16)),
    "head_conv", "fc")


def _param_units(model, params):
  """unit_of of every parameter, in the order the units run."""
  flat = traverse_util.flatten_dict(nn.meta.unbox(params)["params"])
  return [model.unit_of(path)
          for path in sorted(flat, key=lambda p: RUN_ORDER.index(p[0]))]


@pytest.mark.parametrize("key", sorted(TOWERS))
def test_tower_halves_compose_to_the_whole_at_every_unit(key):
  model, params, x = _tower(key)
  assert model.num_units() == 2 + 2
  full = _assert_splits_compose(model, params, x,
                                range(1, model.num_units() + 1))
  assert np.isfinite(np.asarray(full)).all()
  # Units chained one at a time are the whole too.
  state = x
  for k in range(model.num_units()):
    state = model.apply(params, state, start=k, stop=k + 1)
  np.testing.assert_allclose(state, full, atol=1e-5)


@pytest.mark.parametrize("key", sorted(TOWERS))
def test_every_tower_parameter_has_a_unit_in_run_order(key):
  model, params, _ = _tower(key)
  units = _param_units(model, params)
  assert units == sorted(units)                      # non-decreasing
  # Mean pooling without a pooler: the last unit has no parameters.
  top = model.num_units() - (key == "minilm_mean")
  assert set(units) == set(range(top))
  assert model.unit_of(("layer1", "attn", "query", "kernel")) == 2
  for bad in [("layer2", "mlp_in", "kernel"), ("bogus",)]:
    with pytest.raises(ValueError, match="/".join(bad)):
      model.unit_of(bad)


@pytest.mark.parametrize("key", ["bert_pooler", "clip_text"])
def test_text_states_carry_the_mask_or_the_pooled_position(key):
  model, params, ids = _tower(key)
  state = np.asarray(model.apply(params, ids, stop=2))
  assert state.shape == (3, 10, 32 + 1)
  if key == "clip_text":   # 1.0 at the end token, pooled at position 0
    want = np.zeros((3, 10))       # for the all-padding row
    want[[0, 1, 2], [7, 3, 0]] = 1.0
  else:
    want = np.asarray(ids > 0, np.float32)
  np.testing.assert_array_equal(state[..., -1], want)


def test_an_absent_text_mean_pools_to_zeros_split_or_not():
  model, params, ids = _tower("minilm_mean")
  split = model.apply(params, model.apply(params, ids, stop=2), start=2)
  np.testing.assert_array_equal(split[2], 0.0)


def test_units_jit_with_static_bounds():
  model, params, x = _tower("vit_pooler")
  apply = jax.jit(model.apply, static_argnames=("start", "stop"))
  np.testing.assert_allclose(apply(params, apply(params, x, stop=2), start=2),
                             model.apply(params, x), atol=1e-5)


def test_a_split_after_the_prompted_layers_keeps_the_prompts():
  model, params, x = _tower("bert_pooler")
  tokens = jax.random.normal(jax.random.key(1), (3, 1, 2, 32))
  state = model.apply(params, x, extra_tokens=tokens, stop=2)  # layer 0 ran
  np.testing.assert_allclose(model.apply(params, state, start=2),
                             model.apply(params, x, extra_tokens=tokens),
                             atol=1e-5)


@pytest.mark.parametrize("key", ["bert_pooler", "clip_text", "vit_pooler"])
def test_prompts_need_the_whole_prefix_in_one_call(key):
  model, params, x = _tower(key)
  tokens = jnp.zeros((3, 1, 2, 32))
  state = model.apply(params, x, stop=2)
  with pytest.raises(ValueError, match="extra_tokens"):
    model.apply(params, state, extra_tokens=tokens, start=2)
  with pytest.raises(ValueError, match="extra_tokens"):
    model.apply(params, x, extra_tokens=tokens, stop=1)


@pytest.mark.parametrize("start,stop", [(0, 0), (2, 1), (0, 5), (5, None),
                                        (-1, 2)])
def test_bounds_outside_the_units_are_refused(start, stop):
  model, params, x = _tower("vit_pooler")
  with pytest.raises(ValueError, match="units start"):
    model.apply(params, x, start=start, stop=stop)


def test_efficientnet_blocks_compose_at_every_unit():
  x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 16, 16, 3)),
                  jnp.float32)
  model = EfficientNetLite0(blocks=3, head=False, depthwise_impl="xla")
  params = _random_params(model, x)
  assert model.num_units() == 5
  assert model.apply(params, x, stop=2).shape == (2, 8, 8, 16)  # mbconv0
  full = _assert_splits_compose(model, params, x, range(1, 6))
  assert np.abs(np.asarray(full)).max() > 1e-3
  units = _param_units(model, params)
  assert units == sorted(units) and set(units) == {0, 1, 2, 3}
  with pytest.raises(ValueError, match="mbconv3/expand/kernel"):
    model.unit_of(("mbconv3", "expand", "kernel"))   # not run: blocks=3


def test_efficientnet_with_its_head_composes():
  x = jnp.asarray(np.random.default_rng(1).normal(size=(1, 8, 8, 3)),
                  jnp.float32)
  model = EfficientNetLite0(depthwise_impl="xla")
  params = _random_params(model, x)
  assert model.num_units() == 18
  full = _assert_splits_compose(model, params, x, (1, 2, 9, 17))
  assert full.shape == (1, 1280) and np.abs(np.asarray(full)).max() > 1e-3
  units = _param_units(model, params)
  assert units == sorted(units) and set(units) == set(range(18))
  assert model.unit_of(("fc", "kernel")) == 17
  # Only the raw input is checked: a state has C channels, not RGB.
  assert model.apply(params, x, stop=17).shape == (1, 1, 1, 320)
