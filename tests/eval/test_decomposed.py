"""Decomposed evaluation (ume_jax/eval/decomposed.py): the same logits and
metrics as the general path, for every fusion x substitute x missing-logits
combination and for three modalities, with each shared part computed once."""
import dataclasses
import itertools

import flax.linen as nn
import jax
import numpy as np
import pytest

from tests import fakes as fx
from ume_jax import methods
from ume_jax.config import common
from ume_jax.eval import decomposed, evaluation, pattern_choice
from ume_jax.infra import mesh as mesh_lib
from ume_jax.missing import scenarios as scenarios_lib
from ume_jax.missing.masking import SUBSTITUTES
from ume_jax.models import classifier
from ume_jax.train import seeds

# Logits of the two paths: the same float32 operations on other batch
# layouts (a mixed batch vs all-real / all-substitute), so equal up to
# rounding; measured max |diff| 0 to 5e-7 on this CPU.
ATOL = 1e-5

SPEC = dataclasses.replace(
    fx.SPEC, split_sizes={"train": 8, "validation": 21, "test": 16})
SPEC3 = dataclasses.replace(
    SPEC, modalities=("image", "audio", "depth"),
    input_shapes={**SPEC.input_shapes, "depth": (8, 8, 1)})


def _config(spec, fusion="sum_logits", substitute="zeros",
            missing_logits="keep"):
  c = fx.tiny_config()
  for m in spec.modalities:
    if m not in c.model.encoders:
      c.model.encoders[m] = c.model.encoders["image"].copy_and_resolve_references()
  common.set_modalities(c, spec.modalities)
  c.model.fusion, c.model.substitute = fusion, substitute
  c.model.missing_logits = missing_logits
  return c


def _means(spec):
  rng = np.random.default_rng(7)
  return {m: rng.normal(size=spec.input_shapes[m]).astype(np.float32)
          for m in spec.modalities}


def _params(method, seed=0):
  return nn.meta.unbox(method.boxed_params(seeds.init_key(seed)))


def _patterns(num):
  return [np.array(p, bool) for p in itertools.product((True, False),
                                                       repeat=num)]


def _check_logits(method, spec, seed=0):
  fn, params = method.eval_logits, _params(method, seed)
  assert isinstance(fn, decomposed.Decomposed)
  batch = fx.batch(size=12, seed=seed, spec=spec, with_eval_keys=True)
  batch["present"][::3, -1] = False          # the data's own missingness
  general = jax.jit(fn)
  assembled = jax.jit(lambda p, b, pr: fn.assemble(p, fn.pieces(p, b), pr))
  rng = np.random.default_rng(seed)
  masks = [np.broadcast_to(p, (12, len(spec.modalities)))
           for p in _patterns(len(spec.modalities))]
  masks.append(rng.random((12, len(spec.modalities))) < 0.5)  # mixed rows
  worst = 0.0
  for present in masks:
    present = present & batch["present"]
    want = np.asarray(general(params, batch, present))
    got = np.asarray(assembled(params, batch, present))
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)
    worst = max(worst, float(np.abs(got - want).max()))
  return worst


@pytest.mark.parametrize("fusion,substitute,missing_logits", list(
    itertools.product(classifier.FUSIONS, SUBSTITUTES,
                      classifier.MISSING_LOGITS)))
def test_fusion_logits_equal_the_general_path(fusion, substitute,
                                              missing_logits):
  config = _config(SPEC, fusion, substitute, missing_logits)
  _check_logits(fx.fusion(config, SPEC, "mma", _means(SPEC)), SPEC)


@pytest.mark.parametrize("substitute", SUBSTITUTES)
def test_unimodal_and_three_modality_logits(substitute):
  config = _config(SPEC3, "concat_linear", substitute)
  _check_logits(fx.fusion(config, SPEC3, "mma", _means(SPEC3)), SPEC3)
  config = _config(SPEC3, "sum_logits", substitute, "drop")
  _check_logits(fx.fusion(config, SPEC3, "late_fusion", _means(SPEC3)),
                SPEC3, seed=1)
  if substitute == "mean":   # the uni-modal substitutes: zeros, mean, map
    for m in SPEC3.modalities:
      _check_logits(fx.unimodal(config, SPEC3, m, _means(SPEC3)), SPEC3)


def _evaluators(spec, mesh, substitute="zeros"):
  """The uni-modal models, two fusion models, ``ume`` and a composite, on
  ``mesh``; ``ume`` and the composite share the members' params objects."""
  out = {}
  uni = {}
  for i, m in enumerate(spec.modalities):
    method = fx.unimodal(_config(spec, substitute=substitute), spec, m,
                         _means(spec))
    uni[m] = method
    out[method.name] = (method.eval_logits, _placed(method, mesh, i))
  for i, (name, fusion, missing) in enumerate(
      (("mma", "sum_logits", "drop"), ("late_fusion", "concat_linear",
                                       "keep"))):
    method = fx.fusion(_config(spec, fusion, substitute, missing), spec, name,
                       _means(spec))
    out[name] = (method.eval_logits, _placed(method, mesh, 10 + i))
  members = {m: out[f"unimodal:{m}"][1] for m in spec.modalities}
  out["ume"] = (methods.ume_logits(uni, spec, {spec.modalities[0]: 1.7}),
                members)
  scenarios = scenarios_lib.build_scenarios(spec.modalities, ())
  choice = {s.name: {"present": list(s.fixed_present),
                     "chosen": ("ume", "mma")[k % 2]}
            for k, s in enumerate(scenarios)}
  fn, names = pattern_choice.composite(
      choice, {n: out[n][0] for n in out}, spec.modalities)
  out["composite"] = (fn, {n: out[n][1] for n in names})
  return out


def _placed(method, mesh, seed):
  boxed = method.boxed_params(seeds.init_key(seed))
  return jax.device_put(nn.meta.unbox(boxed),
                        mesh_lib.param_shardings(boxed, mesh))


def _both_paths(spec, substitute, mesh_shape=(4, 2)):
  devices = jax.devices()[:mesh_shape[0] * mesh_shape[1]]
  mesh = mesh_lib.build_mesh({"data": mesh_shape[0], "fsdp": mesh_shape[1]},
                             devices)
  evaluators = _evaluators(spec, mesh, substitute)
  kw = dict(dataset=fx.InMemoryDataset(spec), split="validation",
            batch_size=8, mesh=mesh, mask_seed=3,
            scenarios=scenarios_lib.build_scenarios(spec.modalities,
                                                    (0.3, 0.7)))
  return (evaluation.evaluate(evaluators, **kw),
          evaluation.evaluate(evaluators, decompose=False, **kw))


@pytest.mark.parametrize("spec,substitute", [(SPEC, "learned"),
                                             (SPEC3, "mean")])
def test_metrics_equal_the_general_path(spec, substitute):
  fast, slow = _both_paths(spec, substitute)
  assert fast.keys() == slow.keys() and len(fast) == len(spec.modalities) + 4
  for name in slow:
    assert fast[name].keys() == slow[name].keys()
    for scenario, want in slow[name].items():
      got = fast[name][scenario]
      assert got["accuracy"] == want["accuracy"], (name, scenario)
      assert got["nll"] == pytest.approx(want["nll"], rel=1e-5), name
      assert got["ece"] == pytest.approx(want["ece"], abs=1e-5), name
  # The scenarios differ from each other: the test is not vacuous.
  assert len({round(v["nll"], 6) for v in slow["mma"].values()}) > 3


def test_shared_parts_are_computed_once():
  mesh = mesh_lib.build_mesh({"data": 1, "fsdp": 1}, jax.devices()[:1])
  ev = _evaluators(SPEC, mesh)
  uni = {n: ev[n] for n in ("unimodal:image", "unimodal:audio")}
  # Each uni-modal model: real + substitute; ume reads their real pieces.
  the_plan, part_params, _ = decomposed.plan({**uni, "ume": ev["ume"]})
  assert len(the_plan.parts) == 4 and len(part_params) == 2
  # The composite (ume / mma) adds mma's two parts, nothing for ume.
  the_plan, _, _ = decomposed.plan({**uni, "mma": ev["mma"],
                                    "ume": ev["ume"],
                                    "composite": ev["composite"]})
  assert len(the_plan.parts) == 6
  # The same values in other objects are not taken for the same params.
  copies = {m: jax.tree.map(lambda x: x + 0, p)
            for m, p in ev["ume"][1].items()}
  the_plan, part_params, _ = decomposed.plan(
      {**uni, "ume": (ev["ume"][0], copies)})
  assert len(the_plan.parts) == 6 and len(part_params) == 4


def test_a_plain_function_takes_the_general_path():
  mesh = mesh_lib.build_mesh({"data": 1, "fsdp": 1}, jax.devices()[:1])
  ev = _evaluators(SPEC, mesh)
  fn, params = ev["mma"]
  kw = dict(dataset=fx.InMemoryDataset(SPEC), split="test", batch_size=8,
            mesh=mesh, mask_seed=0,
            scenarios=scenarios_lib.build_scenarios(SPEC.modalities, (0.5,)))
  got = evaluation.evaluate(
      {"plain": (lambda p, b, pr: fn(p, b, pr), params), "mma": ev["mma"]},
      **kw)
  for scenario, want in got["plain"].items():
    assert got["mma"][scenario]["accuracy"] == want["accuracy"]
    assert got["mma"][scenario]["nll"] == pytest.approx(want["nll"],
                                                        rel=1e-5)
