"""Pre-trained weights grafted onto fresh, sharded parameters
(ume_jax/weights/graft.py), and the config knobs that ask for them."""
import os

import jax
import numpy as np
import pytest

from tests import fakes as fx
from tests.fakes import make_learnable_asset
from ume_jax.config import common
from ume_jax import experiment, methods
from ume_jax.config import checks as config_checks
from ume_jax.infra import mesh as mesh_lib
from ume_jax.train import seeds, trainer
from ume_jax.data import DatasetSpec
from ume_jax.weights import WeightSet, WeightsError, graft, registry

TEST_WEIGHTS = "test_image_cnn_npz"


def _read_npz(path):
  """A toy weights format: '<module>/<param>' keys in an .npz file."""
  tree = {}
  with np.load(path) as f:
    for key in f.files:
      module, param = key.split("/")
      tree.setdefault(module, {})[param] = f[key]
  return tree


if TEST_WEIGHTS not in registry.weight_names():
  registry.register_weights(WeightSet(
      name=TEST_WEIGHTS, encoder="image_cnn", package="no_such_package_xyz",
      pip_spec="no-such-package-xyz==1.0", package_file="w.npz",
      read=_read_npz))


def _config(tmp):
  c = fx.tiny_config()
  c.data.asset_path = make_learnable_asset(tmp / "asset.npz")
  c.data.data_dir = str(tmp / "tfds")
  c.mesh.data, c.mesh.fsdp = 4, 2
  # Learning rate 0: the parameters stay at their init.
  common.update_stages(c, num_epochs=0, num_steps=2, batch_size=32,
                       optim_values={"learning_rate": 0.0})
  c.methods = ("late_fusion",)
  return c


def _spec_28():
  return DatasetSpec(
      name="avdigits", modalities=("image", "audio"),
      input_shapes={"image": (28, 28, 1), "audio": (40, 40, 1)},
      num_classes=10, multilabel=False,
      split_sizes={"train": 320, "validation": 80, "test": 120})


def _weights_file(config, tmp, seed=3):
  """Random 'pre-trained' weights for the image encoder, saved as npz."""
  method = fx.unimodal(config, _spec_28(), "image")
  shapes = jax.eval_shape(lambda k: jax.tree.map(
      lambda x: getattr(x, "value", x),
      method.model.init(k, *method.example_inputs(1))["params"],
      is_leaf=lambda x: hasattr(x, "value")), jax.random.key(0))["encoder"]
  rng = np.random.default_rng(seed)
  flat = {f"{mod}/{p}": rng.normal(size=s.shape).astype(np.float32)
          for mod, params in shapes.items() for p, s in params.items()}
  path = str(tmp / "image_weights.npz")
  np.savez(path, **flat)
  return path, _read_npz(path)


def _assert_tree_equal(got, want):
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), b),
               got, want)


def test_pretrain_and_scratch_fusion_start_from_the_weights(tmp_path):
  config = _config(tmp_path)
  path, want = _weights_file(config, tmp_path)
  config.model.encoders.image.weights = TEST_WEIGHTS
  config.model.encoders.image.weights_path = path
  workdir = str(tmp_path / "wd")
  for stage in ("pretrain", "finetune"):
    config.stage = stage
    experiment.run(config, workdir)

  mesh = mesh_lib.build_mesh(config.mesh)
  spec = _spec_28()
  uni = fx.unimodal(config, spec, "image")
  got = experiment.restore_params(experiment.unimodal_dir(workdir, "image"), uni,
                               methods.abstract_params(uni, mesh))
  _assert_tree_equal(got["encoder"], want)
  fusion = fx.fusion(config, spec, "late_fusion")
  got = experiment.restore_params(os.path.join(workdir, "late_fusion"), fusion,
                               methods.abstract_params(fusion, mesh))
  _assert_tree_equal(got["image_encoder"], want)
  # The audio encoder, with no weights configured, kept its random init.
  assert max(np.abs(np.asarray(x)).max()
             for x in jax.tree.leaves(got["audio_encoder"])) > 0


def test_graft_keeps_shardings_and_rejects_other_shapes(tmp_path):
  config = _config(tmp_path)
  _, want = _weights_file(config, tmp_path)
  mesh = mesh_lib.build_mesh(config.mesh)
  uni = fx.unimodal(config, _spec_28(), "image")
  tx = trainer.optim.make_optimizer(config.pretrain.optim, 10)
  params = trainer.plan_state(uni, tx, mesh)[0](seeds.init_key(0)).params
  out = graft.graft(params["encoder"], want, where="encoder", source="test")
  _assert_tree_equal(out, want)
  jax.tree.map(lambda a, b: assert_same_sharding(a, b), out,
               params["encoder"])

  bad = jax.tree.map(lambda x: x, want)
  first = sorted(bad)[0]
  bad[first]["kernel"] = bad[first]["kernel"][..., :1]
  with pytest.raises(WeightsError, match=f"encoder/{first}/kernel"):
    graft.graft(params["encoder"], bad, where="encoder", source="test")
  del bad[first]
  with pytest.raises(WeightsError, match=f"2 missing.*encoder/{first}/bias"):
    graft.graft(params["encoder"], bad, where="encoder", source="test")


def assert_same_sharding(a, b):
  assert a.sharding == b.sharding


def test_config_checks_name_the_weights_problem(tmp_path):
  config = _config(tmp_path)
  spec = _spec_28()
  config.model.encoders.audio.weights = TEST_WEIGHTS
  with pytest.raises(WeightsError, match="encoders.audio.weights.*image_cnn"):
    config_checks.check_against_dataset(config, spec)
  config.model.encoders.audio.weights = ""
  config.model.encoders.image.weights = TEST_WEIGHTS
  with pytest.raises(WeightsError, match="pip install --no-deps"
                     " no-such-package-xyz==1.0"):
    config_checks.check_against_dataset(config, spec)
  config.model.encoders.image.weights_path = str(tmp_path / "absent.npz")
  with pytest.raises(WeightsError, match="absent.npz.*does not exist"):
    config_checks.check_against_dataset(config, spec)
  config.model.encoders.image.weights = "no_such_weights"
  with pytest.raises(WeightsError, match="Unknown pre-trained weights"):
    config_checks.check_against_dataset(config, spec)
  config.model.encoders.image.weights = ""
  config.model.encoders.image.pretrained = "x"
  with pytest.raises(config_checks.ConfigError, match="pretrained"):
    config_checks.check_against_dataset(config, spec)
