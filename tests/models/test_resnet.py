"""ResNet-18 encoder (ume_jax/models/resnet.py)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ume_jax.models import build_encoder, registry
from ume_jax.models.resnet import ResNet18

TINY = dict(widths=(4, 8, 8, 8), feature_dim=6, stem_stride=1)


def _unbox(tree):
  return jax.tree.map(lambda p: getattr(p, "value", p), tree,
                      is_leaf=lambda p: hasattr(p, "value"))


def _init(model, x):
  return _unbox(model.init(jax.random.key(0), x)["params"])


def test_image_and_frames_shapes():
  model = ResNet18(**TINY)
  img = jnp.ones((2, 16, 12, 1))
  params = _init(model, img)
  assert model.apply({"params": params}, img).shape == (2, 6)
  # The same parameters serve frames: the 2D network is shared over time.
  frames = jnp.ones((2, 3, 16, 16, 3))
  params3 = _init(model, frames)
  assert model.apply({"params": params3}, frames).shape == (2, 6)


def test_temporal_pooling_is_mean_of_frame_features():
  model = ResNet18(**TINY)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3, 16, 16, 3)),
                  jnp.float32)
  params = _init(model, x)
  pooled = model.apply({"params": params}, x, method=ResNet18.frame_features)
  per_frame = jnp.stack([
      model.apply({"params": params}, x[:, t], method=ResNet18.frame_features)
      for t in range(3)], axis=1)
  np.testing.assert_allclose(pooled, per_frame.mean(axis=1), rtol=1e-5,
                             atol=1e-6)


def test_jit_and_bad_rank():
  model = ResNet18(**TINY)
  x = jnp.ones((2, 8, 8, 1))
  params = _init(model, x)
  out = jax.jit(lambda p, x: model.apply({"params": p}, x))(params, x)
  assert out.shape == (2, 6) and np.all(np.isfinite(out))
  with pytest.raises(ValueError, match="resnet18 expects"):
    model.apply({"params": params}, jnp.ones((2, 8, 8)))


def test_registered_with_flexible_rank_and_kwargs():
  assert registry.input_ndim("resnet18") is None  # config_checks skips rank
  enc = build_encoder("resnet18", {"widths": (4, 4, 4, 4)})
  assert tuple(enc.widths) == (4, 4, 4, 4)
  with pytest.raises(ValueError, match="Bad options"):
    build_encoder("resnet18", {"width": 3})


def test_full_width_param_count_is_resnet18():
  model = ResNet18()
  shapes = jax.eval_shape(model.init, jax.random.key(0),
                          jnp.zeros((1, 64, 64, 3)))
  params = _unbox(shapes["params"])
  total = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))
  proj = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params["proj"]))
  # torchvision's ResNet-18 without fc: 11.18M; ours adds the stride-2 conv
  # standing in for max-pool (~37k) and GroupNorm in place of BatchNorm.
  assert 11.0e6 < total - proj < 11.4e6, total - proj
  # Every parameter carries logical axis names (for sharding).
  boxed = jax.tree.leaves(shapes["params"], is_leaf=lambda p: hasattr(p, "names"))
  assert all(hasattr(p, "names") for p in boxed)
