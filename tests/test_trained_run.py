"""The public API of a finished run (ume_jax/trained_run.py): what it
refuses, and a model's ``apply`` on any presence mask. Reproducing a whole
run's results.json: tests/jobs/test_default_job.py."""
import jax
import flax.linen as nn
import numpy as np
import pytest

from tests import fakes as fx
from ume_jax import trained_run
from ume_jax.train import seeds


def _model():
  method = fx.fusion(fx.tiny_config(), fx.SPEC, "mma")
  params = nn.meta.unbox(method.boxed_params(seeds.init_key(0)))
  return trained_run.Model("mma", params, method.eval_logits,
                           fx.SPEC.modalities, dict(fx.SPEC.input_shapes),
                           dict(fx.SPEC.input_dtypes)), method, params


def test_apply_is_the_method_under_any_presence_mask():
  model, method, params = _model()
  batch = fx.batch(size=6)
  present = np.array([[1, 1], [1, 0], [0, 1]] * 2, bool)
  want = method.eval_logits(params, {**batch, "present": present}, present)
  got = model.apply(batch, present)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-6)
  # A modality left out of the batch is absent: the same as masking it.
  no_audio = model.apply({"image": batch["image"]})
  np.testing.assert_allclose(
      np.asarray(no_audio),
      np.asarray(model.apply(batch, np.array([[1, 0]] * 6, bool))),
      atol=1e-6)


def test_apply_refuses_a_mask_that_does_not_fit():
  model, _, _ = _model()
  batch = fx.batch(size=4)
  with pytest.raises(ValueError, match=r"present must be \(B, M\) = \(4, 2\)"):
    model.apply(batch, np.ones((4, 3), bool))
  with pytest.raises(ValueError, match=r"\['audio'\] are present, but"):
    model.apply({"image": batch["image"]}, np.ones((4, 2), bool))


def test_a_directory_without_a_run_is_refused(tmp_path):
  with pytest.raises(trained_run.RunError, match="holds no provenance.json"):
    trained_run.load(str(tmp_path), devices=jax.devices()[:1])
