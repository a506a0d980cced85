"""Several seeds (config.num_seeds): one subdirectory per seed, each its own
resumable run, and results aggregated over them (experiment.run)."""
import json
import os

import numpy as np
import pytest

from tests import fakes
from ume_jax import experiment
from ume_jax.config import common
from ume_jax.missing.masking import MaskingSpec


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("seeds")
  c = fakes.tiny_config()
  c.data.asset_path = fakes.make_learnable_asset(tmp / "asset.npz")
  c.data.data_dir = str(tmp / "tfds")
  c.num_seeds = 2
  c.methods = ("late_fusion", "mma")
  c.train_missing.type, c.train_missing.ratio = "audio", 0.25
  common.update_stages(c, num_epochs=0, num_steps=12, batch_size=32,
                       optim_values={"warmup_steps": 2, "learning_rate": 1e-2})
  c.eval.batch_size = 40
  c.eval.missing_rates = (0.5,)
  workdir = str(tmp / "workdir")
  return c, workdir, experiment.run(c, workdir)


def test_each_seed_is_a_run_of_its_own(run):
  _, workdir, results = run
  per_seed = []
  for k in range(2):
    with open(os.path.join(workdir, f"seed_{k}", "results.json")) as f:
      per_seed.append(json.load(f))
    assert os.path.isdir(os.path.join(workdir, f"seed_{k}", "pretrain",
                                      "image"))
  assert results["seeds"] == [0, 1000]
  assert json.loads(json.dumps(results["per_seed"])) == per_seed
  # Another seed, another training: the two runs' numbers differ.
  assert per_seed[0]["methods"]["mma"] != per_seed[1]["methods"]["mma"]


def test_aggregates_are_the_per_seed_statistics(run):
  _, _, results = run
  for method in ("unimodal:audio", "mma", "ume_mma"):
    for scenario in ("full", "missing:image", "missing_rate:both:0.5"):
      values = [r["methods"][method][scenario]["accuracy"]
                for r in results["per_seed"]]
      a = results["aggregate"][method][scenario]["accuracy"]
      assert a["n"] == 2
      assert a["mean"] == pytest.approx(np.mean(values))
      assert a["std"] == pytest.approx(np.std(values, ddof=1))
      assert results["methods"][method][scenario]["accuracy"] == a["mean"]
  diff = results["paired_differences"]["late_fusion"]["missing:image"]
  assert diff["mean"] == pytest.approx(np.mean([
      r["methods"]["ume_mma"]["missing:image"]["accuracy"]
      - r["methods"]["late_fusion"]["missing:image"]["accuracy"]
      for r in results["per_seed"]]))
  assert {c["verdict"].split(" ")[0] for c in results["claims"]} <= {
      "holds", "fails", "undecided"}


def test_results_md_prints_mean_std_and_the_claims(run):
  _, workdir, _ = run
  with open(os.path.join(workdir, "results.md")) as f:
    text = f.read()
  assert "mean ± std over 2 seeds" in text
  assert "## The paper's claims" in text and " ± " in text


def test_training_missingness_is_the_same_for_every_seed(run):
  config, _, results = run
  spec = type("Spec", (), {"modalities": ("image", "audio"),
                           "split_sizes": {"train": 320}})()
  tables = []
  for seed in results["seeds"]:
    c = config.copy_and_resolve_references()
    c.seed = seed
    tables.append(MaskingSpec.from_config(c, spec).train_absent)
  np.testing.assert_array_equal(tables[0], tables[1])
  assert tables[0][:, 1].sum() == 80 and not tables[0][:, 0].any()
  assert results["protocol"]["train_present_fraction"] == {
      "image": 1.0, "audio": 0.75}


def test_rerun_resumes_every_seed_and_gives_the_same_results(run):
  config, workdir, results = run
  again = experiment.run(config, workdir)
  assert json.loads(json.dumps(again)) == json.loads(json.dumps(results))
