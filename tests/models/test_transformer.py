"""The transformer towers (ume_jax/models/{transformer,bert,vit,clip_text}.py):
the extra-token hook, the compute dtype, and how their parameters shard."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ume_jax.infra import mesh as mesh_lib
from ume_jax.models import build_encoder

TOWERS = {
    "bert": dict(vocab_size=50, max_positions=16, max_len=16, width=32,
                 depth=3, heads=4, mlp_dim=64),
    "clip_text": dict(vocab_size=50, max_positions=16, max_len=16, width=32,
                      depth=3, heads=4, mlp_dim=64, projection_dim=8,
                      eos_token_id=49),
    "vit": dict(image_size=16, patch_size=8, width=32, depth=3, heads=4,
                mlp_dim=64),
    "clip_vision": dict(image_size=16, patch_size=8, width=32, depth=3,
                        heads=4, mlp_dim=64, projection_dim=8),
}


def _inputs(name, batch=4):
  rng = np.random.default_rng(0)
  if "image_size" in TOWERS[name]:
    return jnp.asarray(rng.normal(size=(batch, 16, 16, 3)), jnp.float32)
  ids = rng.integers(1, 45, size=(batch, 10))
  ids[:, 7], ids[:, 8:] = 49, 0            # an end token, then padding
  return jnp.asarray(ids, jnp.int32)


def _tower(name, **kwargs):
  model = build_encoder(name, {**TOWERS[name], **kwargs})
  x = _inputs(name)
  return model, model.init(jax.random.key(0), x), x


@pytest.mark.parametrize("name", sorted(TOWERS))
def test_extra_tokens_enter_the_first_layers_only(name):
  model, params, x = _tower(name)
  plain = model.apply(params, x)
  tokens = jax.random.normal(jax.random.key(1), (4, 2, 3, 32))
  # No prompted layers: exactly the plain tower.
  none = model.apply(params, x, extra_tokens=tokens[:, :0])
  np.testing.assert_array_equal(none, plain)
  prompted = model.apply(params, x, extra_tokens=tokens)
  assert prompted.shape == plain.shape
  assert np.abs(np.asarray(prompted - plain)).max() > 1e-4
  # Each example sees its own tokens: changing example 0's leaves the rest.
  # (Random, not a constant shift: pre-LN towers normalise that away.)
  changed = tokens.at[0].set(jax.random.normal(jax.random.key(2), (2, 3, 32)))
  other = model.apply(params, x, extra_tokens=changed)
  np.testing.assert_allclose(other[1:], prompted[1:], atol=1e-6)
  assert np.abs(np.asarray(other[0] - prompted[0])).max() > 1e-4
  # The tokens get a gradient (a prompt learns through them).
  g = jax.grad(lambda t: model.apply(params, x, extra_tokens=t).sum())(tokens)
  assert np.abs(np.asarray(g)).sum() > 0 and np.isfinite(np.asarray(g)).all()


@pytest.mark.parametrize("bad", [(4, 4, 3, 32), (4, 2, 3, 31), (2, 2, 3, 32)])
def test_extra_tokens_of_the_wrong_shape_are_refused(bad):
  model, params, x = _tower("bert")
  with pytest.raises(ValueError, match="extra_tokens must be"):
    model.apply(params, x, extra_tokens=jnp.zeros(bad))


@pytest.mark.parametrize("name", sorted(TOWERS))
def test_bfloat16_compute_keeps_float32_parameters(name):
  model, params, x = _tower(name)
  f32 = model.apply(params, x)
  bf16_model = build_encoder(name, {**TOWERS[name], "dtype": "bfloat16"})
  bf16_params = bf16_model.init(jax.random.key(0), x)
  leaves = jax.tree.leaves(nn.meta.unbox(bf16_params))
  assert all(p.dtype == jnp.float32 for p in leaves)
  out = bf16_model.apply(params, x)
  assert out.dtype == jnp.float32 and np.isfinite(np.asarray(out)).all()
  # The same function, to bfloat16's ~3 significant digits.
  scale = np.abs(np.asarray(f32)).max()
  assert np.abs(np.asarray(out - f32)).max() < 0.05 * scale


def test_another_image_size_is_refused_naming_the_trained_one():
  model, params, _ = _tower("vit")
  with pytest.raises(ValueError, match=r"\(batch, 16, 16, 3\)"):
    model.apply(params, jnp.zeros((1, 32, 32, 3)))


@pytest.mark.parametrize("name", sorted(TOWERS))
def test_parameters_split_over_fsdp(name):
  """Every matrix of a tower is split over the fsdp axis, not replicated."""
  model = build_encoder(name, TOWERS[name])
  boxed = jax.eval_shape(model.init, jax.random.key(0), _inputs(name))
  mesh = mesh_lib.build_mesh({"data": 2, "fsdp": 4})
  shardings = mesh_lib.param_shardings(boxed, mesh)
  shapes = nn.meta.unbox(boxed)
  flat = jax.tree_util.tree_flatten_with_path(shardings)[0]
  replicated = [jax.tree_util.keystr(path) for (path, s), x in
                zip(flat, jax.tree.leaves(shapes))
                if s.is_fully_replicated and x.size >= 32 * 8]
  assert not replicated, replicated
  summary = mesh_lib.sharding_summary(shapes, shardings)
  assert summary["sharded_bytes"] > 20 * summary["replicated_bytes"]


def test_inputs_that_do_not_fit_are_refused_by_the_config_check():
  from ume_jax.config import checks  # pylint: disable=g-import-not-at-top
  from ume_jax.config import common  # pylint: disable=g-import-not-at-top
  from ume_jax.data import DatasetSpec  # pylint: disable=g-import-not-at-top
  from tests import fakes  # pylint: disable=g-import-not-at-top
  c = fakes.tiny_config()
  c.model.encoders.image = common.encoder("vit", TOWERS["vit"])
  c.model.encoders.audio = common.encoder("clip_text", TOWERS["clip_text"])

  def spec(image, length):
    return DatasetSpec(
        name="fake", modalities=("image", "audio"),
        input_shapes={"image": image, "audio": (length,)}, num_classes=3,
        multilabel=False, split_sizes={"train": 8, "validation": 8,
                                       "test": 8},
        input_dtypes={"audio": "int32"})

  checks.check_against_dataset(c, spec((16, 16, 3), 16))
  with pytest.raises(checks.ConfigError, match=r"at most 16 tokens.*\(17,\)"):
    checks.check_against_dataset(c, spec((16, 16, 3), 17))
  with pytest.raises(checks.ConfigError, match=r"\(16, 16, 3\) images"):
    checks.check_against_dataset(c, spec((32, 32, 3), 16))
  # A tokenizer whose ids outrun the embedding table (JAX would clamp them).
  checks.check_against_dataset(c, spec((16, 16, 3), 16), {"audio": 50})
  with pytest.raises(checks.ConfigError, match=r"embeds 50 .* up to 50;"):
    checks.check_against_dataset(c, spec((16, 16, 3), 16), {"audio": 51})
