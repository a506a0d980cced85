"""Surviving faults: preemption (SIGTERM), kill -9, corrupt checkpoints,
non-finite losses, and resuming on another mesh.

The signal tests run ``python -m ume_jax.main`` in a subprocess (8 fake CPU
devices, like the test session) and compare against an uninterrupted run of
the same command.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from tests import fakes as fx
from tests.fakes import make_learnable_asset
from ume_jax.config import common
from ume_jax import experiment, methods
from ume_jax.infra import preemption
from ume_jax.infra import mesh as mesh_lib
from ume_jax.train import trainer
from ume_jax import data as data_lib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))


def _overrides(asset, data_dir, workdir):
  flags = {"data.asset_path": asset, "data.data_dir": data_dir,
           "methods": "('mma',)", "eval.missing_rates": "(1.0,)",
           "eval.batch_size": 40, "checkpoint.every_steps": 10,
           "log_every_steps": 10}
  for stage in common.STAGE_SECTIONS:
    flags.update({f"{stage}.num_epochs": 0, f"{stage}.num_steps": 120,
                  f"{stage}.batch_size": 32})
  return ["--config=configs/default.py", f"--workdir={workdir}"] + [
      f"--config.{k}={v}" for k, v in flags.items()]


def _start(args):
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1",
             XLA_FLAGS="--xla_force_host_platform_device_count=8")
  return subprocess.Popen([sys.executable, "-m", "ume_jax.main"] + args,
                          cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def _wait_for_checkpoint(proc, directory, timeout=300):
  """Blocks until ``directory`` holds a finished (all-digit) step."""
  deadline = time.time() + timeout
  while time.time() < deadline:
    if os.path.isdir(directory) and any(
        d.isdigit() for d in os.listdir(directory)):
      return
    if proc.poll() is not None:
      raise AssertionError("run ended before checkpointing:\n"
                           + proc.stdout.read())
    time.sleep(0.05)
  raise AssertionError(f"no checkpoint in {directory} after {timeout} s")


def _results(workdir):
  with open(os.path.join(workdir, "results.json")) as f:
    return json.load(f)


def _metrics(workdir, run):
  with open(os.path.join(workdir, run, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  # steps_per_s is wall-clock; everything else must repeat exactly.
  return {r["step"]: {k: v for k, v in r.items() if k != "steps_per_s"}
          for r in rows}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("faults")
  asset = make_learnable_asset(tmp / "asset.npz")
  data_dir = str(tmp / "tfds")
  reference = str(tmp / "reference")
  proc = _start(_overrides(asset, data_dir, reference))
  out, _ = proc.communicate(timeout=900)
  assert proc.returncode == 0, out
  return tmp, asset, data_dir, reference


def _assert_same_run(workdir, reference):
  assert _results(workdir)["methods"] == _results(reference)["methods"]
  for run in ("pretrain/image", "pretrain/audio", "mma"):
    got, want = _metrics(workdir, run), _metrics(reference, run)
    # Every logged step of the reference appears with the same numbers
    # (the resumed run logs the steps after its restart).
    for step, row in got.items():
      assert row == want[step], (run, step)


def _interrupt(setup, name, sig, timeout):
  """Starts the job, sends ``sig`` once pretrain/audio has a checkpoint;
  returns (args, workdir, return code, output)."""
  tmp, asset, data_dir, _ = setup
  workdir = str(tmp / name)
  args = _overrides(asset, data_dir, workdir)
  proc = _start(args)
  _wait_for_checkpoint(proc, os.path.join(workdir, "pretrain", "audio"))
  proc.send_signal(sig)
  out, _ = proc.communicate(timeout=timeout)
  return args, workdir, proc.returncode, out


def _rerun_matches_reference(args, workdir, reference, resumed_pattern):
  proc = _start(args)
  out, _ = proc.communicate(timeout=900)
  assert proc.returncode == 0, out
  assert re.search(resumed_pattern, out), out
  _assert_same_run(workdir, reference)


def test_sigterm_checkpoints_exits_143_and_rerun_matches(setup):
  args, workdir, code, out = _interrupt(setup, "sigterm", signal.SIGTERM, 300)
  assert code == preemption.EXIT_STATUS, out
  match = re.search(r"saved a checkpoint of step (\d+)", out)
  assert match, out
  assert "Traceback" not in out
  # The step it stopped at is on disk, finished, and the job is not done.
  stopped = match.group(1)
  assert any(os.path.isdir(os.path.join(workdir, d, stopped))
             for d in ("pretrain/audio", "mma"))
  assert not os.path.exists(os.path.join(workdir, "results.json"))
  _rerun_matches_reference(args, workdir, setup[3], r"resumed from step")


def test_ctrl_c_checkpoints_exits_130_in_one_line(setup):
  """What follows the notice is SIGTERM's path (checkpoint, Preempted), whose
  rerun the test above compares with the uninterrupted run."""
  args, workdir, code, out = _interrupt(setup, "sigint", signal.SIGINT, 300)
  assert code == preemption.INTERRUPTED_STATUS, out
  match = re.search(r"Ctrl-C \(SIGINT\) received; saved a checkpoint of step"
                    r" (\d+)", out)
  assert match, out
  assert "Traceback" not in out and "KeyboardInterrupt" not in out, out
  stopped = match.group(1)
  assert any(os.path.isdir(os.path.join(workdir, d, stopped))
             for d in ("pretrain/audio", "mma"))
  assert not os.path.exists(os.path.join(workdir, "results.json"))


def test_kill_9_rerun_resumes_and_matches_uninterrupted_run(setup):
  args, workdir, code, _ = _interrupt(setup, "killed", signal.SIGKILL, 60)
  assert code == -signal.SIGKILL
  _rerun_matches_reference(args, workdir, setup[3],
                           r"unimodal:audio: resumed from step \d+")


# ---- in-process faults ------------------------------------------------------

def _config(tmp, asset, **mesh):
  c = fx.tiny_config()
  c.data.asset_path = asset
  c.data.data_dir = str(tmp / "tfds")
  c.mesh.data, c.mesh.fsdp = mesh.get("data", 4), mesh.get("fsdp", 2)
  c.pretrain.num_epochs, c.pretrain.num_steps = 0, 20
  c.pretrain.batch_size = 32
  c.checkpoint.every_steps = 10
  c.checkpoint.max_to_keep = 3
  c.log_every_steps = 5
  c.stage = "pretrain"
  return c


def _image_params(config, workdir):
  spec = data_lib.get_dataset(config.data).spec
  method = fx.unimodal(config, spec, "image")
  mesh = mesh_lib.build_mesh(config.mesh)
  return experiment.restore_params(experiment.unimodal_dir(workdir, "image"),
                                method, methods.abstract_params(method, mesh))


def _tree_close(a, b, **tol):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(
      np.asarray(x), np.asarray(y), **tol), a, b)


@pytest.fixture(scope="module")
def pretrained_run(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("pretrain")
  asset = make_learnable_asset(tmp / "asset.npz")
  config = _config(tmp, asset)
  workdir = str(tmp / "wd")
  experiment.run(config, workdir)
  return tmp, asset, workdir, _image_params(config, workdir)


def _truncate_files(directory):
  for root, _, files in os.walk(directory):
    for name in files:
      path = os.path.join(root, name)
      size = os.path.getsize(path)
      with open(path, "r+b") as f:
        f.truncate(size // 2)


def test_corrupt_latest_checkpoint_warns_and_resumes_from_previous(
    pretrained_run, caplog):
  tmp, asset, workdir, want = pretrained_run
  image_dir = experiment.unimodal_dir(workdir, "image")
  _truncate_files(os.path.join(image_dir, "20", "state"))
  config = _config(tmp, asset)
  experiment.run(config, workdir)
  assert any("step 20" in r.getMessage() and "unreadable" in r.getMessage()
             for r in caplog.records), [r.getMessage() for r in caplog.records]
  # The damaged step was moved aside, not deleted; step 20 was retrained
  # from step 10 and is again what an uninterrupted run produced.
  assert os.listdir(os.path.join(image_dir, "corrupt"))[0].startswith("20.")
  _tree_close(_image_params(config, workdir), want, rtol=0, atol=0)
  # The replayed steps 11..20 are logged once, in metrics.jsonl and in
  # TensorBoard, with the learning rate; the events files hold values.
  with open(os.path.join(image_dir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  assert [r["step"] for r in rows] == [5, 10, 15, 20]
  assert all(r["learning_rate"] > 0 for r in rows)
  found, _ = fx.tensorboard_scalars(image_dir)
  assert sorted(s for t, s in found if t == "learning_rate") == [5, 10, 15, 20]
  assert all(len(v) == 1 for v in found.values()), found
  assert [found[("loss", r["step"])][0] for r in rows] == pytest.approx(
      [r["loss"] for r in rows])


def test_resume_on_another_mesh_and_device_count(pretrained_run):
  tmp, asset, workdir, want = pretrained_run
  moved = str(tmp / "other_mesh")
  os.makedirs(os.path.join(moved, "pretrain"))
  for m in ("image", "audio"):
    src = experiment.unimodal_dir(workdir, m)
    dst = experiment.unimodal_dir(moved, m)
    os.makedirs(dst)
    os.symlink(os.path.join(src, "10"), os.path.join(dst, "10"))
    # The run's record goes with its checkpoint (the mesh is not in it).
    shutil.copy(os.path.join(src, "provenance.json"), dst)
  # Written on data=4 x fsdp=2 (8 devices), resumed on 2 devices, no fsdp.
  config = _config(tmp, asset, data=2, fsdp=1)
  small = jax.devices()[:2]
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(jax, "devices", lambda *a: small)
    experiment.run(config, moved)
    got = _image_params(config, moved)
  # Other devices sum the batch in another order: float tolerance.
  _tree_close(got, want, rtol=1e-4, atol=1e-5)


def test_non_finite_loss_stops_naming_the_step_and_keeps_last_good(
    tmp_path):
  asset = make_learnable_asset(tmp_path / "asset.npz")
  config = _config(tmp_path, asset)
  config.pretrain.optim.grad_clip_norm = 0.0
  config.pretrain.optim.warmup_steps = 0
  config.pretrain.optim.learning_rate = 1e30   # diverges within steps
  config.checkpoint.every_steps = 1
  workdir = str(tmp_path / "wd")
  with pytest.raises(trainer.TrainingError,
                     match=r"non-finite at step (\d+)") as info:
    experiment.run(config, workdir)
  bad = int(re.search(r"at step (\d+)", str(info.value)).group(1))
  image_dir = experiment.unimodal_dir(workdir, "image")
  saved = sorted(int(d) for d in os.listdir(image_dir) if d.isdigit())
  assert all(s < bad for s in saved)
  if saved:   # the kept checkpoint restores, and it is finite
    assert f"step {saved[-1]}" in str(info.value)
    params = _image_params(config, workdir)
    assert all(np.isfinite(np.asarray(x)).all()
               for x in jax.tree.leaves(params))
