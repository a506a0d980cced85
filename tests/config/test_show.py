"""``python -m ume_jax.config.show``: a config's resolved values, a run's
recorded config, and their difference."""
import json
import os
import subprocess
import sys

from configs import default as default_config
from ume_jax.config import show
from ume_jax.train import provenance

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def _show(*args):
  done = subprocess.run([sys.executable, "-m", "ume_jax.config.show", *args],
                        capture_output=True, text=True, cwd=ROOT, timeout=300)
  return done.returncode, done.stdout, done.stderr


def _recorded_workdir(tmp_path, config):
  """A workdir whose one training run recorded ``config``."""
  run = tmp_path / "wd" / "pretrain" / "image"
  run.mkdir(parents=True)
  (run / provenance.FILE).write_text(json.dumps(
      {"identity": "x", "fingerprint": {}, "config": config.to_dict()}))
  return str(tmp_path / "wd")


def test_lines_are_every_leaf_sorted_with_json_values():
  config = default_config.get_config("small")
  out = show.lines(config)
  assert out == sorted(out)
  assert "eval.missing_rates = [0.5, 1.0]" in out
  assert 'data.name = "avdigits"' in out
  assert len(out) == len(provenance.flat(config.to_dict()))


def test_the_shell_prints_a_file_a_run_and_their_difference(tmp_path):
  workdir = _recorded_workdir(tmp_path, default_config.get_config())
  code, out, _ = _show("--config=configs/default.py:small",
                       "--config.pretrain.num_epochs=3")
  assert code == 0 and "pretrain.num_epochs = 3" in out.splitlines()
  code, out, _ = _show(f"--workdir={workdir}")
  assert code == 0 and "pretrain.num_epochs = 8" in out.splitlines()
  code, out, _ = _show(f"--workdir={workdir}",
                       "--config=configs/default.py",
                       "--config.pretrain.num_epochs=3")
  assert code == 0
  assert out.strip().splitlines() == ["pretrain.num_epochs: run 8, config 3"]
  code, out, _ = _show(f"--workdir={workdir}", "--config=configs/default.py")
  assert code == 0 and out.startswith("no differences")


def test_a_directory_without_a_run_is_one_line_of_error(tmp_path):
  code, _, err = _show(f"--workdir={tmp_path}")
  assert code == 1
  assert err.strip().startswith(f"error: {str(tmp_path)!r} holds no"
                                " provenance.json")
  assert "Traceback" not in err
