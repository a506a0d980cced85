"""Training-time missingness reaches every stage (ume_jax/methods.py)."""
import jax
import numpy as np

from tests import fakes as fx
from ume_jax import experiment
from ume_jax.missing import masking
from ume_jax.eval import metrics
from ume_jax.train import seeds


def _setup():
  config = fx.tiny_config()
  config.train_missing.rates.audio = 0.5
  batch = fx.batch(64)
  batch["index"] = np.arange(64, dtype=np.int32)
  lacking = masking.training_absent(config.train_missing, fx.SPEC.modalities,
                                   fx.SPEC.split_sizes["train"])[:, 1]
  assert lacking.sum() == 32   # exactly half of the 64 training examples
  return config, batch, lacking


def _init(method):
  return jax.tree.map(
      lambda p: getattr(p, "value", p),
      method.model.init(seeds.init_key(0), *method.example_inputs(1))
      ["params"], is_leaf=lambda p: hasattr(p, "value"))


def test_unimodal_pretraining_skips_examples_without_the_modality():
  config, batch, lacking = _setup()
  audio = fx.unimodal(config, fx.SPEC, "audio")
  np.testing.assert_array_equal(audio.example_weights(batch), ~lacking)
  image = fx.unimodal(config, fx.SPEC, "image")
  np.testing.assert_array_equal(image.example_weights(batch), 1.0)
  params = _init(audio)
  logits = audio.train_logits(params, batch, None)
  weighted = metrics.loss(logits, batch["label"], False,
                          audio.example_weights(batch))
  kept = metrics.loss(logits[~lacking], batch["label"][~lacking], False)
  np.testing.assert_allclose(weighted, kept, rtol=1e-6)


def test_fusion_training_never_sees_the_missing_audio():
  config, batch, lacking = _setup()
  for name in ("late_fusion", "mma"):
    method = fx.fusion(config, fx.SPEC, name)
    params = _init(method)
    other = dict(batch, audio=batch["audio"] * 10 + 3)
    key = jax.random.key(1)
    a = np.asarray(method.train_logits(params, batch, key))
    b = np.asarray(method.train_logits(params, other, key))
    np.testing.assert_allclose(a[lacking], b[lacking], rtol=1e-6)
    assert not np.allclose(a[~lacking], b[~lacking])


def test_moddrop_draws_the_same_masks_as_mma():
  """Modality dropout from scratch is mma's augmentation without the
  pre-trained start: the same params, batch and key give the same logits,
  which late fusion's (no augmentation) are not."""
  config, batch, _ = _setup()
  config.train_missing.rates.audio = 0.0
  mma, moddrop, plain = (fx.fusion(config, fx.SPEC, n)
                         for n in ("mma", "moddrop", "late_fusion"))
  params = _init(mma)
  key = jax.random.key(3)
  a = np.asarray(mma.train_logits(params, batch, key))
  np.testing.assert_array_equal(
      np.asarray(moddrop.train_logits(params, batch, key)), a)
  assert not np.allclose(np.asarray(plain.train_logits(params, batch, key)),
                         a)
  # Trained as the scratch baseline is, with mma's run seed.
  config.methods = ("late_fusion", "moddrop", "mma")
  runs = {r.method.name: r for r in experiment.training_runs(
      experiment.Setup(config, None, None, experiment.build_methods(
          config, fx.SPEC)), "/tmp/unused")}
  assert runs["moddrop"].section == "scratch"
  assert runs["moddrop"].seed == runs["mma"].seed


def test_umt_is_late_fusion_plus_teachers():
  """umt's student is the late-fusion model: the same parameters give the
  same training logits (no augmentation) and the same evaluation, whatever
  the teachers hold; its training run reads the uni-modal checkpoints."""
  config, batch, _ = _setup()
  umt, plain = (fx.fusion(config, fx.SPEC, n) for n in ("umt", "late_fusion"))
  params = _init(plain)
  with_teachers = {**params, "teacher": {
      m: params[f"{m}_encoder"] for m in fx.SPEC.modalities}}
  key = jax.random.key(3)
  logits, terms = umt.train_terms(with_teachers, batch, key)
  # Split at the features (one student forward for both losses): the same
  # numbers within float rounding.
  np.testing.assert_allclose(
      np.asarray(logits), np.asarray(plain.train_logits(params, batch, key)),
      rtol=1e-6, atol=1e-6)
  assert set(terms) == {"distill"}
  present = jax.numpy.asarray(batch["present"])
  np.testing.assert_array_equal(
      np.asarray(umt.eval_logits(with_teachers, batch, present)),
      np.asarray(plain.eval_logits(params, batch, present)))
  config.methods = ("late_fusion", "umt")
  runs = {r.method.name: r for r in experiment.training_runs(
      experiment.Setup(config, None, None, experiment.build_methods(
          config, fx.SPEC)), "/tmp/unused")}
  assert runs["umt"].section == "scratch" and runs["umt"].stage == "finetune"
  assert set(runs["umt"].upstream) == set(fx.SPEC.modalities)
  assert not runs["late_fusion"].upstream
