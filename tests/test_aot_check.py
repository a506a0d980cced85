"""Ahead-of-time compile check (ume_jax/train/aot.py,
experiment.compile_check, ume_jax/aot_check.py)."""
import os
import subprocess
import sys

import jax
import pytest

from tests import fakes as fx
from tests.fakes import make_learnable_asset
from ume_jax.config import common
from ume_jax import experiment
from ume_jax.config import checks as config_checks

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def config(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("aot")
  c = fx.tiny_config()
  c.data.asset_path = make_learnable_asset(tmp / "asset.npz")
  c.data.data_dir = str(tmp / "tfds")
  c.mesh.data, c.mesh.fsdp = 4, 2
  common.update_stages(c, batch_size=32)
  return c


def test_every_training_run_compiles_with_sharded_params(config):
  report = experiment.compile_check(config)
  assert [r["method"] for r in report] == [
      "unimodal:image", "unimodal:audio", "late_fusion",
      "late_fusion_pretrained", "mma"]
  for r in report:
    assert r["mesh"] == {"data": 4, "fsdp": 2}
    assert r["sharded_params"]["sharded_bytes"] > 0
    assert r["argument_mb_per_device"] > 0
    # The fusion model holds both encoders: more parameters than either.
  sizes = {r["method"]: r["params_mb"] for r in report}
  assert sizes["mma"] > max(sizes["unimodal:image"], sizes["unimodal:audio"])


def test_fsdp_splits_per_device_arguments(config):
  replicated = config.copy_and_resolve_references()
  replicated.mesh.data, replicated.mesh.fsdp = 8, 1
  by_mesh = {}
  for c in (config, replicated):
    r = experiment.compile_check(c, jax.devices())[-1]
    by_mesh[c.mesh.fsdp] = r["argument_mb_per_device"]
  # Parameters and optimizer state are split in two with fsdp=2.
  assert by_mesh[2] < by_mesh[1]


def test_a_batch_that_does_not_split_is_reported(config):
  bad = config.copy_and_resolve_references()
  bad.pretrain.batch_size = 12
  with pytest.raises(config_checks.ConfigError, match="pretrain.batch_size"):
    experiment.compile_check(bad)


def test_cli_compiles_for_more_devices_than_the_host_has(config, tmp_path):
  env = dict(os.environ)
  env.pop("XLA_FLAGS", None)
  out = subprocess.run(
      [sys.executable, "-m", "ume_jax.aot_check", "--config=configs/default.py",
       "--num_devices=16", "--config.mesh.fsdp=4",
       f"--config.data.asset_path={config.data.asset_path}",
       f"--config.data.data_dir={config.data.data_dir}",
       "--config.methods=('mma',)", f"--output={tmp_path / 'r.json'}"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr
  assert "mesh {'data': 4, 'fsdp': 4}" in out.stdout
  assert out.stdout.count("compiled in") == 3
  bad = subprocess.run(
      [sys.executable, "-m", "ume_jax.aot_check", "--config=configs/default.py",
       "--num_devices=12", f"--config.data.asset_path={config.data.asset_path}",
       f"--config.data.data_dir={config.data.data_dir}"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert bad.returncode == 1
  assert "batch_size = 128 does not split over the 12 devices" in bad.stderr
  assert "Traceback" not in bad.stderr
