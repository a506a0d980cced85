"""The command line: user mistakes end in one paragraph, not a traceback."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cli(*args):
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "ume_jax.main", *args],
                        cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=300)


def _main(tmp_path, *overrides):
  return _cli("--config=configs/default.py", f"--workdir={tmp_path / 'wd'}",
              f"--config.data.data_dir={tmp_path / 'tfds'}", *overrides)


def test_unknown_override_key(tmp_path):
  r = _main(tmp_path, "--config.pretrain.num_epoch=3")
  assert r.returncode != 0
  assert "num_epoch" in r.stderr and 'Did you mean "num_epochs"' in r.stderr
  assert "Traceback" not in r.stderr


def test_unknown_encoder_and_missing_checkpoints(tmp_path):
  r = _main(tmp_path, "--config.model.encoders.audio.name=resnet")
  assert r.returncode != 0 and "Traceback" not in r.stderr
  assert "model.encoders.audio.name = 'resnet' is not a registered" in r.stderr
  r = _main(tmp_path, "--config.stage=eval")
  assert r.returncode != 0 and "Traceback" not in r.stderr
  assert f"No checkpoint directory {tmp_path / 'wd' / 'pretrain' / 'image'}" \
      in r.stderr


def test_unknown_config_variant_is_one_line(tmp_path):
  r = _cli("--config=configs/clipart.py:bogus", f"--workdir={tmp_path}")
  assert r.returncode != 0
  assert "Traceback" not in r.stderr
  err = r.stderr.strip()
  assert err.startswith("error: flag --config=configs/clipart.py:bogus")
  assert "Unknown variant(s) ['bogus']" in err and len(err.splitlines()) == 1


def test_a_wrong_config_path_is_one_line(tmp_path):
  r = _cli("--config=configs/nope.py", f"--workdir={tmp_path}")
  assert r.returncode != 0 and "Traceback" not in r.stderr
  err = r.stderr.strip()
  assert len(err.splitlines()) == 1, err
  assert err.startswith("error: cannot load the config file given by"
                        " --config") and "configs/nope.py" in err


def test_unwritable_workdir_and_missing_stage_inputs_before_any_work(
    tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("")
  r = _main(tmp_path, f"--workdir={blocker / 'wd'}")
  assert r.returncode != 0 and "Traceback" not in r.stderr
  assert "is not a writable directory" in r.stderr
  # Fine-tuning needs the uni-modal checkpoints: refused before late_fusion
  # (trained from scratch) starts, so nothing is trained.
  r = _main(tmp_path, "--config.stage=finetune")
  assert r.returncode != 0 and "Traceback" not in r.stderr
  assert f"No checkpoint directory {tmp_path / 'wd' / 'pretrain' / 'image'}" \
      in r.stderr
  assert "[late_fusion]" not in r.stdout
  assert not (tmp_path / "wd" / "late_fusion").exists()
