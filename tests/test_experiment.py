"""End to end: every stage on a small learnable asset, through the real
tfds/grain pipeline, on an 8-device (data=4, fsdp=2) mesh."""
import contextlib
import io
import json
import os
import shutil

import jax
import numpy as np
import pytest

from tests import fakes as fx
from tests.fakes import make_learnable_asset
from ume_jax.config import common
from ume_jax import experiment, methods
from ume_jax.infra import checkpoint, workdir_lock
from ume_jax.config import checks as config_checks
from ume_jax.eval import calibration, evaluation
from ume_jax.train import warm_start
from ume_jax.missing import scenarios
from ume_jax.infra import mesh as mesh_lib
from ume_jax.train import distill, provenance, seeds, trainer, validation
from ume_jax import data as data_lib

METHODS = ["unimodal:image", "unimodal:audio", "ume", "late_fusion",
           "late_fusion_pretrained", "mma", "umt", "ume_mma", "ume_umt",
           "best_per_pattern"]


def _config(tmp, workdir_asset):
  c = fx.tiny_config()
  c.data.asset_path = workdir_asset
  c.data.data_dir = str(tmp / "tfds")
  c.mesh.data, c.mesh.fsdp = 4, 2
  c.methods = tuple(c.methods) + ("umt",)   # opt-in: tested here, sharded
  common.update_stages(c, num_epochs=0, num_steps=20, batch_size=32,
                       optim_values={"warmup_steps": 2, "learning_rate": 1e-2})
  c.checkpoint.every_steps = 10
  c.log_every_steps = 10
  c.eval.batch_size = 48  # does not divide the 80/120 examples of the splits
  c.eval.missing_rates = (0.5, 1.0)
  return c


_PRINTED = io.StringIO()   # what the module's run printed


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("e2e")
  asset = make_learnable_asset(tmp / "asset.npz")
  config = _config(tmp, asset)
  workdir = str(tmp / "workdir")
  fits = []
  fit = calibration.fit_temperature
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(calibration, "fit_temperature",
                  lambda *a, **k: fits.append(1) or fit(*a, **k))
    with contextlib.redirect_stdout(_PRINTED):
      results = experiment.run(config, workdir)
  # Two warm starts (late_fusion_pretrained, mma) and the evaluation use
  # the temperatures; each uni-modal model's is fitted once.
  assert len(fits) == 2
  return config, workdir, results


def test_results_json_is_complete_and_consistent(run):
  config, workdir, results = run
  with open(os.path.join(workdir, "results.json")) as f:
    on_disk = json.load(f)
  assert on_disk == json.loads(json.dumps(results))
  assert on_disk["dataset"] == "avdigits"
  assert on_disk["metrics"] == ["accuracy"]
  names = [s.name for s in scenarios.build_scenarios(("image", "audio"),
                                                     (0.5, 1.0))]
  assert sorted(on_disk["methods"]) == sorted(METHODS)
  for method, row in on_disk["methods"].items():
    assert list(row) == names, method
    for s in names:
      assert 0.0 <= row[s]["accuracy"] <= 1.0
  chosen = on_disk["ume_mma_choice"]["chosen"]
  assert chosen in ("ume", "mma")
  assert on_disk["methods"]["ume_mma"] == on_disk["methods"][chosen]
  val_means = on_disk["ume_mma_choice"]["validation"]["mean"]
  assert val_means[chosen] >= max(val_means.values())
  m = on_disk["methods"]
  assert on_disk["ceiling"] == {
      "missing:image": m["unimodal:audio"]["full"]["accuracy"],
      "missing:audio": m["unimodal:image"]["full"]["accuracy"]}
  # missing_rate:<m>:1 masks every example, i.e. equals missing:<m>.
  for method in METHODS:
    assert m[method]["missing_rate:audio:1"] == m[method]["missing:audio"]
  for f in ("results.md", "robustness.png", "pretrain/image/metrics.jsonl"):
    assert os.path.getsize(os.path.join(workdir, f)) > 0
  assert any(n.startswith("events.out.tfevents")
             for n in os.listdir(os.path.join(workdir, "mma")))


def test_the_run_ends_with_the_path_of_its_results(run):
  _, workdir, _ = run
  last = _PRINTED.getvalue().strip().splitlines()[-1]
  assert last == f"results: {os.path.join(workdir, 'results.json')}"


def test_test_metrics_go_to_tensorboard(run):
  _, workdir, results = run
  scalars, files = fx.tensorboard_scalars(workdir)
  assert len(files) == 1
  for method, rows in results["methods"].items():
    for scenario, values in rows.items():
      for metric, value in values.items():
        tag = f"test/{method}/{scenario}/{metric}".replace(":", "_")
        assert scalars[tag, 0] == [
            pytest.approx(value, rel=1e-6)]


def test_a_second_run_on_one_workdir_is_refused_naming_the_first(tmp_path):
  workdir = str(tmp_path / "wd")
  with workdir_lock.held(workdir):
    with pytest.raises(workdir_lock.WorkdirLockedError,
                       match=rf"pid {os.getpid()}, started"):
      experiment.run(fx.tiny_config(), workdir)
  assert not os.path.exists(workdir_lock.lock_path(workdir))


def test_training_learns_and_ume_drops_absent_modality(run):
  _, _, results = run
  m = results["methods"]
  assert m["unimodal:image"]["full"]["accuracy"] > 0.6  # chance is 0.1
  # UME with audio missing is the image model, temperature-scaled: the same
  # predictions, other confidences (model.calibrate).
  assert (m["ume"]["missing:audio"]["accuracy"]
          == m["unimodal:image"]["full"]["accuracy"])
  t = results["temperatures"]
  assert set(t) == {"image", "audio"} and all(0.05 <= v <= 20
                                              for v in t.values())


def test_umt_trains_its_student_against_teachers_kept_bit_identical(run):
  """The frozen teachers in umt's checkpoint are, bit for bit, the
  uni-modal encoders of the checkpoints the next stage reads; the student
  encoders trained away from their own initialisation; the UME/UMT choice
  is reported with the chosen method's numbers."""
  config, workdir, results = run
  mesh = mesh_lib.build_mesh(config.mesh)
  spec = data_lib.get_dataset(config.data).spec
  method = fx.fusion(config, spec, "umt")
  trained = experiment.restore_params(os.path.join(workdir, "umt"), method,
                                      methods.abstract_params(method, mesh))
  for m in spec.modalities:
    u = fx.unimodal(config, spec, m)
    chosen, _ = validation.chosen(experiment.unimodal_dir(workdir, m),
                                  config.validation.select)
    teacher = experiment.restore_params(chosen, u, methods.abstract_params(
        u, mesh))["encoder"]
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(
        np.asarray(a).view(np.uint8), np.asarray(b).view(np.uint8)),
        trained[distill.TEACHER][m], teacher)
    assert not np.array_equal(
        np.asarray(jax.tree.leaves(trained[f"{m}_encoder"])[0]),
        np.asarray(jax.tree.leaves(teacher)[0]))
  with open(os.path.join(workdir, "umt", "metrics.jsonl")) as f:
    rows = [json.loads(l) for l in f]
  assert all(r["distill_loss"] >= 0 for r in rows if "distill_loss" in r)
  assert any("distill_loss" in r for r in rows)
  choice = results["ume_umt_choice"]
  assert results["methods"]["ume_umt"] == results["methods"][
      choice["chosen"]]
  v = results["validation"]
  assert (choice["chosen"] == "ume") == (
      v["ume"]["full"]["accuracy"] > v["late_fusion"]["full"]["accuracy"])
  record = results["provenance"]["umt"]["fingerprint"]
  assert record["distill_weight"] == 1.0
  assert set(record["initialised_from"]) == set(spec.modalities)


def _eval_on(mesh, config, workdir, method_name):
  dataset = data_lib.get_dataset(config.data)
  method = fx.fusion(config, dataset.spec, method_name)
  params = experiment.restore_params(os.path.join(workdir, method_name), method,
                                  methods.abstract_params(method, mesh))
  return evaluation.evaluate(
      {method_name: (method.eval_logits, params)}, dataset=dataset,
      split="test", batch_size=40, mesh=mesh, mask_seed=config.eval.mask_seed,
      scenarios=scenarios.build_scenarios(dataset.spec.modalities, (0.5,)))


def test_checkpoint_from_8_devices_evaluates_identically_on_1(run):
  config, workdir, results = run
  one = mesh_lib.build_mesh({"data": 1, "fsdp": 1}, jax.devices()[:1])
  on_one = _eval_on(one, config, workdir, "mma")["mma"]
  for s, v in on_one.items():
    assert v == results["methods"]["mma"][s], s


def test_resume_reproduces_uninterrupted_run(run, tmp_path):
  config, workdir, _ = run
  wd = str(tmp_path / "wd")
  shutil.copytree(os.path.join(workdir, "pretrain"),
                  os.path.join(wd, "pretrain"))
  shutil.copytree(os.path.join(workdir, "mma"), os.path.join(wd, "mma"))
  shutil.rmtree(os.path.join(wd, "mma", "20"))  # "crashed" after step 10
  config = config.copy_and_resolve_references()
  config.stage, config.methods = "finetune", ("mma",)
  experiment.run(config, wd)
  mesh = mesh_lib.build_mesh(config.mesh)
  spec = data_lib.get_dataset(config.data).spec
  method = fx.fusion(config, spec, "mma")
  abstract = methods.abstract_params(method, mesh)
  original = experiment.restore_params(os.path.join(workdir, "mma"), method,
                                    abstract)
  resumed = experiment.restore_params(os.path.join(wd, "mma"), method, abstract)
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(
      np.asarray(a), np.asarray(b)), original, resumed)


def test_finetuning_starts_from_unimodal_weights(run):
  config, workdir, _ = run
  mesh = mesh_lib.build_mesh(config.mesh)
  spec = data_lib.get_dataset(config.data).spec
  uni = {m: fx.unimodal(config, spec, m) for m in spec.modalities}
  method = fx.fusion(config, spec, "mma")
  fresh = trainer.plan_state(method, trainer.optim.make_optimizer(
      config.finetune.optim, 10), mesh)[0](seeds.init_key(7)).params
  loaded = warm_start.load_into_fusion(
      fresh, unimodal={m: (experiment.unimodal_dir(workdir, m), u)
                       for m, u in uni.items()}, load_heads=True)
  for m in spec.modalities:
    want = experiment.restore_params(experiment.unimodal_dir(workdir, m), uni[m],
                                  methods.abstract_params(uni[m], mesh))
    for part in ("encoder", "head"):
      got = loaded[f"{m}_{part}"]
      jax.tree.map(lambda a, b: np.testing.assert_array_equal(
          np.asarray(a), np.asarray(b)), got, want[part])
      assert not np.array_equal(  # and fresh init really was different
          np.asarray(jax.tree.leaves(fresh[f"{m}_{part}"])[0]),
          np.asarray(jax.tree.leaves(want[part])[0]))


def test_eval_refuses_checkpoint_of_another_model(run, tmp_path):
  config, workdir, _ = run
  config = config.copy_and_resolve_references()
  config.stage = "eval"
  config.eval.checkpoint_dir = workdir
  config.model.encoders.image.kwargs.feature_dim = 64
  with pytest.raises(checkpoint.CheckpointError,
                     match="belongs to another model") as e:
    experiment.run(config, str(tmp_path / "other"))
  assert os.path.join(workdir, "pretrain", "image") in str(e.value)


def test_eval_without_checkpoints_names_the_directory(run, tmp_path):
  config, _, _ = run
  config = config.copy_and_resolve_references()
  config.stage = "eval"
  with pytest.raises(checkpoint.CheckpointError, match="train that stage"
                     ) as e:
    experiment.run(config, str(tmp_path / "empty"))
  assert str(tmp_path / "empty" / "pretrain" / "image") in str(e.value)


def test_config_errors_name_the_key(run):
  config, _, _ = run
  bad = config.copy_and_resolve_references()
  bad.finetune.batch_size = 12
  with pytest.raises(config_checks.ConfigError,
                     match=r"finetune.batch_size = 12 .* multiple of 8"):
    config_checks.check_against_mesh(bad, mesh_lib.build_mesh(bad.mesh))
  bad = config.copy_and_resolve_references()
  bad.pretrain.num_epoch = 3
  with pytest.raises(config_checks.ConfigError, match="pretrain.num_epoch"):
    config_checks.check_config(bad, experiment.CONFIG_SCHEMA)
  bad = config.copy_and_resolve_references()
  bad.model.encoders.audio.name = "image_cnn"
  spec = data_lib.DatasetSpec("flat", ("image", "audio"),
                              {"image": (28, 28, 1), "audio": (300,)}, 10,
                              False, {"train": 1})
  with pytest.raises(config_checks.ConfigError,
                     match=r"model.encoders.audio.*shape \(300,\)"):
    config_checks.check_against_dataset(bad, spec)


def test_training_runs_have_their_section_directory_and_seed(run):
  config, workdir, _ = run
  config = config.copy_and_resolve_references()
  config.seed = 5
  runs = experiment.training_runs(experiment.setup(config), workdir)
  got = [(r.method.name, r.stage, r.section,
          os.path.relpath(r.directory, workdir), r.seed) for r in runs]
  assert got == [
      ("unimodal:image", "pretrain", "pretrain", "pretrain/image", 5),
      ("unimodal:audio", "pretrain", "pretrain", "pretrain/audio", 6),
      ("late_fusion", "finetune", "scratch", "late_fusion", 105),
      ("late_fusion_pretrained", "finetune", "finetune",
       "late_fusion_pretrained", 105),
      ("mma", "finetune", "finetune", "mma", 105),
      ("umt", "finetune", "scratch", "umt", 105)]


# (override, the fingerprint key the refusal must name)
CHANGES = [
    ({"mma.drop_probs.image": 0.0}, "drop_probs.image"),
    ({"finetune.optim.learning_rate": 0.5}, "training.optim.learning_rate"),
    ({"pretrain.num_steps": 40}, "training.num_steps"),
    ({"seed": 1}, "seed"),
    ({"train_missing.rates.audio": 0.5}, "train_missing.rates.audio"),
    ({"model.substitute": "mean"}, "method.substitute"),
]


def _changed(config, overrides):
  c = config.copy_and_resolve_references()
  for key, value in overrides.items():
    *parents, leaf = key.split(".")
    section = c
    for p in parents:
      section = section[p]
    section[leaf] = value
  return c


@pytest.mark.parametrize("overrides,key", CHANGES)
def test_a_changed_training_is_refused_not_reused(run, tmp_path, overrides,
                                                  key):
  config, workdir, _ = run
  wd = str(tmp_path / "wd")
  shutil.copytree(workdir, wd)
  with pytest.raises(provenance.ProvenanceError) as e:
    experiment.run(_changed(config, overrides), wd)
  assert f"{key}: trained with" in str(e.value)
  with open(os.path.join(wd, "results.json")) as f:   # nothing rewritten
    assert json.load(f) == json.loads(json.dumps(run[2]))


def test_a_retrained_upstream_run_makes_fine_tuning_stale(run, tmp_path):
  config, workdir, _ = run
  wd = str(tmp_path / "wd")
  shutil.copytree(workdir, wd)
  # Pre-training redone under another learning rate (its old runs deleted).
  shutil.rmtree(os.path.join(wd, "pretrain"))
  retrain = _changed(config, {"stage": "pretrain",
                              "pretrain.optim.learning_rate": 5e-3})
  experiment.run(retrain, wd)
  with pytest.raises(provenance.ProvenanceError) as e:
    experiment.run(_changed(retrain, {"stage": "finetune"}), wd)
  assert "initialised_from.image: trained with" in str(e.value)
  assert os.path.join(wd, "late_fusion_pretrained") in str(e.value)


def test_settings_outside_the_training_resume_and_are_recorded(run, tmp_path):
  config, workdir, results = run
  wd = str(tmp_path / "wd")
  shutil.copytree(workdir, wd)
  again = experiment.run(_changed(config, {
      "data.worker_count": 2, "log_every_steps": 3, "eval.batch_size": 40,
      "checkpoint.every_steps": 7}), wd)
  assert again["methods"] == results["methods"]
  record = results["provenance"]["mma"]
  assert record["identity"] and record["config"]["mma"]["drop_probs"] == {
      "image": 0.5, "audio": 0.5}
  assert record["fingerprint"]["drop_probs"] == {"image": 0.5, "audio": 0.5}
  assert results["code"]["version"] == "0.1.0"
