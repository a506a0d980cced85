"""Evaluation (ume_jax/eval/evaluation.py): ``predict`` collects a model's
logits once per example in order; ``evaluate``'s calibration metrics agree
with them and do not depend on the mesh."""
import dataclasses

import flax.linen as nn
import jax
import numpy as np
import pytest

from tests import fakes as fx
from ume_jax import methods
from ume_jax.eval import calibration, evaluation
from ume_jax.infra import mesh as mesh_lib
from ume_jax.missing import scenarios as scenarios_lib
from ume_jax.train import seeds

# 21 validation examples: batches of 8 leave 3 padding rows in the last one.
SPEC = dataclasses.replace(
    fx.SPEC, split_sizes={"train": 8, "validation": 21, "test": 16})


def _mesh(shape=(8, 1)):
  devices = jax.devices()[:shape[0] * shape[1]]
  return mesh_lib.build_mesh({"data": shape[0], "fsdp": shape[1]}, devices)


def _models(mesh, seed=0):
  """The two uni-modal methods and their parameters, placed on ``mesh``."""
  config = fx.tiny_config()
  out = {}
  for i, m in enumerate(SPEC.modalities):
    method = fx.unimodal(config, SPEC, m)
    boxed = method.boxed_params(seeds.init_key(seed + i))
    params = jax.device_put(nn.meta.unbox(boxed),
                            mesh_lib.param_shardings(boxed, mesh))
    out[m] = (method, params)
  return out


@pytest.fixture(scope="module")
def setup():
  mesh = _mesh()
  return fx.InMemoryDataset(SPEC), mesh, _models(mesh)


def test_predict_returns_each_example_once_in_order(setup):
  dataset, mesh, models = setup
  method, params = models["image"]
  logits, labels = evaluation.predict(
      method.eval_logits, params, dataset=dataset, split="validation",
      batch_size=8, mesh=mesh)
  a = dataset.arrays["validation"]
  assert logits.shape == (21, SPEC.num_classes)
  np.testing.assert_array_equal(labels, a["label"])
  # The model on the whole split at once, rows in dataset order.
  want = method.model.apply({"params": jax.device_get(params)}, a["image"])
  np.testing.assert_allclose(logits, np.asarray(want), rtol=1e-5, atol=1e-5)
  # Another batch size, the same rows.
  again, _ = evaluation.predict(
      method.eval_logits, params, dataset=dataset, split="validation",
      batch_size=16, mesh=mesh)
  np.testing.assert_allclose(again, logits, rtol=1e-5, atol=1e-5)


def test_predict_present_pattern_and_the_data_own_missingness(setup):
  dataset, mesh, models = setup
  uni = {m: method for m, (method, _) in models.items()}
  params = {m: p for m, (_, p) in models.items()}
  ume = methods.ume_logits(uni, SPEC)
  kw = dict(dataset=dataset, split="validation", batch_size=8, mesh=mesh)
  image, _ = evaluation.predict(uni["image"].eval_logits, params["image"],
                                **kw)
  audio, _ = evaluation.predict(uni["audio"].eval_logits, params["audio"],
                                **kw)
  # Audio withheld: UME is its image model.
  only_image, _ = evaluation.predict(ume, params, present=[True, False], **kw)
  np.testing.assert_allclose(only_image, image, rtol=1e-6, atol=1e-6)
  # All present, except where the data itself has no audio.
  full, _ = evaluation.predict(ume, params, **kw)
  has_audio = dataset.arrays["validation"]["present"][:, 1:]
  np.testing.assert_allclose(full, image + audio * has_audio, rtol=1e-5,
                             atol=1e-5)
  with pytest.raises(ValueError, match=r"present must be \(2,\)"):
    evaluation.predict(ume, params, present=[True], **kw)


def _evaluate(dataset, mesh, models, batch_size=8):
  uni = {m: method for m, (method, _) in models.items()}
  params = {m: p for m, (_, p) in models.items()}
  return evaluation.evaluate(
      {"unimodal:image": (uni["image"].eval_logits, params["image"]),
       "ume": (methods.ume_logits(uni, SPEC), params)},
      dataset=dataset, split="validation", batch_size=batch_size, mesh=mesh,
      mask_seed=0,
      scenarios=scenarios_lib.build_scenarios(SPEC.modalities, (0.5,)))


def test_evaluate_reports_the_calibration_of_predict_logits(setup):
  dataset, mesh, models = setup
  got = _evaluate(dataset, mesh, models)
  method, params = models["image"]
  logits, labels = evaluation.predict(
      method.eval_logits, params, dataset=dataset, split="validation",
      batch_size=8, mesh=mesh)
  full = got["unimodal:image"]["full"]
  assert list(full) == ["accuracy", "ece", "nll"]
  assert full["accuracy"] == np.mean(np.argmax(logits, -1) == labels)
  assert full["ece"] == pytest.approx(
      calibration.ece(logits, labels, False), abs=1e-6)
  assert full["nll"] == pytest.approx(
      calibration.nll(logits, labels, False), rel=1e-5)
  for row in got.values():
    for values in row.values():
      assert set(values) == {"accuracy", "ece", "nll"}
      assert 0 <= values["ece"] <= 1 and values["nll"] > 0


def test_metrics_do_not_depend_on_the_mesh(setup):
  """Bit for bit, as the end-to-end 8-device vs 1-device check wants: the
  calibration sums are made on the host, not by sharded float32 sums."""
  dataset, _, _ = setup
  by_mesh, logits = [], []
  for shape in ((4, 2), (1, 1)):
    mesh = _mesh(shape)
    models = _models(mesh)
    # 16 a batch: with one example a device (8) XLA's CPU convolutions
    # already give logits that differ in the last bit; with two they match.
    logits.append(evaluation.predict(
        models["image"][0].eval_logits, models["image"][1], dataset=dataset,
        split="validation", batch_size=16, mesh=mesh)[0])
    by_mesh.append(_evaluate(dataset, mesh, models, batch_size=16))
  np.testing.assert_array_equal(logits[0], logits[1])  # the premise
  assert by_mesh[0] == by_mesh[1]
