"""Workdirs on object storage (ume_jax/infra/paths.py), on an offline
``gs://`` (tests/fake_gcs.py): Orbax's arrays go through TensorStore's own
GCS driver to a local stand-in of GCS's JSON API, everything else through
etils.epath to an fsspec filesystem with object semantics (no appending,
no folders of their own, no rename).

A whole job there writes the results.json of the same job on a local disk;
a rerun resumes instead of retraining; the lock, appended logs and a
damaged checkpoint step behave there as they do on a disk.
"""
import json
import os
import sys

import jax
import numpy as np
import pytest

from tests import fake_gcs
from tests import fakes as fx
from ume_jax import experiment
from ume_jax.config import checks as config_checks
from ume_jax.config import common
from ume_jax.infra import checkpoint, logs, paths, workdir_lock

BUCKET = "ume-test-bucket"


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
  """The root folder behind ``gs://``, served for the module's tests."""
  root = tmp_path_factory.mktemp("gcs")
  (root / BUCKET).mkdir()
  server, url = fake_gcs.serve(str(root))
  with pytest.MonkeyPatch.context() as patch:
    patch.setenv("TENSORSTORE_GCS_HTTP_URL", url)
    patch.setenv("STORAGE_EMULATOR_HOST", url)
    fake_gcs.register(str(root))
    yield root
  server.shutdown()


def _config(tmp):
  c = fx.tiny_config()
  c.data.asset_path = fx.make_learnable_asset(tmp / "asset.npz")
  c.data.data_dir = str(tmp / "tfds")
  c.mesh.data, c.mesh.fsdp = 4, 2
  c.methods = ("mma",)   # one fusion stage: what differs is where files go
  common.update_stages(c, num_epochs=0, num_steps=8, batch_size=32,
                       optim_values={"warmup_steps": 2, "learning_rate": 1e-2})
  c.checkpoint.every_steps = 4
  c.log_every_steps = 2
  c.eval.missing_rates = (0.5,)
  return c


@pytest.fixture(scope="module")
def jobs(gcs, tmp_path_factory):
  """The same job on a local disk and on gs://; its results both times."""
  tmp = tmp_path_factory.mktemp("object_storage")
  config = _config(tmp)
  local = experiment.run(config, str(tmp / "local"))
  remote = experiment.run(config, f"gs://{BUCKET}/job")
  return config, local, remote


def _comparable(tree):
  """Results without where they were written (run directories)."""
  if isinstance(tree, dict):
    return {k: _comparable(v) for k, v in tree.items() if k != "directory"}
  if isinstance(tree, list):
    return [_comparable(v) for v in tree]
  return tree


def test_a_job_on_gs_writes_the_results_of_the_same_job_on_disk(gcs, jobs):
  _, local, remote = jobs
  on_gs = json.loads((gcs / BUCKET / "job" / "results.json").read_text())
  assert on_gs == json.loads(json.dumps(remote))
  assert _comparable(on_gs) == _comparable(json.loads(json.dumps(local)))
  assert on_gs["provenance"] != json.loads(json.dumps(local))["provenance"]
  assert remote["methods"]["mma"]["full"]["accuracy"] > 0.25   # learnt
  job = gcs / BUCKET / "job"
  for f in ("results.md", "robustness.png", "pretrain/image/metrics.jsonl",
            "pretrain/image/provenance.json", "mma/best/record.json"):
    assert (job / f).stat().st_size > 0, f
  # Orbax marks finished steps with its commit file there (no rename).
  assert (job / "mma" / "8" / checkpoint.COMMIT_FILE).is_file()
  assert any(n.name.startswith("events.out.tfevents")
             for n in (job / "mma").iterdir())
  assert not (job / workdir_lock.LOCK_NAME).exists()   # released
  # Nothing was written to a local folder named after the URL.
  assert not os.path.exists("gs:")


def test_a_rerun_on_gs_resumes_and_logs_each_step_once(gcs, jobs):
  config, _, remote = jobs
  again = experiment.run(config, f"gs://{BUCKET}/job")
  assert _comparable(again) == _comparable(remote)
  rows = [json.loads(line) for line in (
      gcs / BUCKET / "job" / "mma" / "metrics.jsonl").read_text().splitlines()]
  steps = [r["step"] for r in rows if "loss" in r]
  assert steps == sorted(set(steps)) and steps[-1] == 8


def test_the_lock_on_gs_refuses_a_second_run_and_takes_over_a_dead_one(gcs):
  workdir = f"gs://{BUCKET}/locked"
  me = workdir_lock.acquire(workdir)
  with pytest.raises(workdir_lock.WorkdirLockedError, match=r"in use by"):
    workdir_lock.acquire(workdir)
  workdir_lock.release(workdir, me)
  assert not paths.exists(workdir_lock.lock_path(workdir))
  dead = dict(workdir_lock.holder_info(), pid=2**22 + 7)   # no such pid
  assert paths.create_exclusive(workdir_lock.lock_path(workdir),
                                json.dumps(dead))
  assert not paths.create_exclusive(workdir_lock.lock_path(workdir), "{}")
  assert workdir_lock.acquire(workdir)["pid"] == os.getpid()


def test_a_lock_replaced_since_it_was_read_is_not_removed(gcs):
  lock = f"gs://{BUCKET}/replaced/run.lock"
  assert paths.create_exclusive(lock, "first")
  _, token = paths.read_versioned(lock)
  paths.write_text(lock, "second")   # another run's, meanwhile
  assert not paths.remove_if(lock, token)
  assert paths.read_text(lock) == "second"


def test_metrics_on_gs_are_rewritten_not_appended(gcs):
  logdir = f"gs://{BUCKET}/logs"
  for first in (1, 3):
    writer = logs.MetricWriter(logdir, tensorboard=False,
                               resume_step=first - 1)
    for step in (first, first + 1, first + 2):
      writer.write(step, {"loss": float(step)})
    writer.close()
  rows = (gcs / BUCKET / "logs" / "metrics.jsonl").read_text().splitlines()
  assert [json.loads(r)["step"] for r in rows] == [1, 2, 3, 4, 5]


def test_a_damaged_step_on_gs_is_moved_aside_and_the_previous_restored(gcs):
  directory = f"gs://{BUCKET}/ckpt"
  ck = checkpoint.Checkpointer(directory, {"model": "m"}, asynchronous=False)
  state = {"w": jax.numpy.arange(64.0)}
  for step in (1, 2):
    ck.save(step, jax.tree.map(lambda x: x * step, state), {})
  ck.wait()
  data = sorted((gcs / BUCKET / "ckpt" / "2" / "state").rglob("d/*"))
  blob = bytearray(data[0].read_bytes())
  blob[len(blob) // 2] ^= 0xFF
  data[0].write_bytes(bytes(blob))
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(
      x.shape, x.dtype, sharding=x.sharding), state)
  step, restored, _ = checkpoint.Checkpointer(
      directory, {"model": "m"}).restore_latest(abstract)
  assert step == 1
  np.testing.assert_array_equal(np.asarray(restored["w"]), np.arange(64.0))
  assert [p.name.split(".")[0] for p in (
      gcs / BUCKET / "ckpt" / "corrupt").iterdir()] == ["2"]
  assert checkpoint.saved_steps(directory) == [1]


def test_a_gs_workdir_without_its_client_libraries_stops_at_start(
    gcs, monkeypatch):
  monkeypatch.setitem(sys.modules, "google.cloud.storage", None)
  with pytest.raises(config_checks.ConfigError,
                     match=r"gs://.*needs the `gcs` extra.*google-cloud-st"):
    experiment.run(fx.tiny_config(), f"gs://{BUCKET}/no_clients")
