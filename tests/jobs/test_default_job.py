"""The default job (`make run`) end to end on the embedded dataset, with the
paper's claims checked on its test split: the numbers the README reports."""
import json
import os
import re
import subprocess
import sys

import pytest

from configs import default as default_config
from ume_jax import experiment


@pytest.fixture(scope="module")
def job(tmp_path_factory):
  config = default_config.get_config()
  config.data.data_dir = str(tmp_path_factory.mktemp("tfds"))
  workdir = str(tmp_path_factory.mktemp("default_job"))
  # On the 8 fake test devices: sharded, where `make run` here uses one.
  return experiment.run(config, workdir), workdir


@pytest.fixture(scope="module")
def results(job):
  return job[0]


def _acc(results, method, scenario):
  return 100 * results["methods"][method][scenario]["accuracy"]


def test_embedded_dataset_modalities_strong_and_weak(results):
  image = _acc(results, "unimodal:image", "full")
  audio = _acc(results, "unimodal:audio", "full")
  assert image >= 95.0
  assert 50.0 <= audio <= image - 5.0


def test_ume_mma_reaches_the_ceiling_when_a_modality_is_missing(results):
  for m in ("image", "audio"):
    s = f"missing:{m}"
    assert _acc(results, "ume_mma", s) >= 100 * results["ceiling"][s] - 1.5


def test_ume_mma_full_at_least_best_unimodal(results):
  best = max(_acc(results, f"unimodal:{m}", "full") for m in ("image", "audio"))
  assert _acc(results, "ume_mma", "full") >= best


def test_mma_beats_late_fusion_on_every_missing_modality(results):
  for m in ("image", "audio"):
    s = f"missing:{m}"
    assert _acc(results, "mma", s) > _acc(results, "late_fusion", s)


# --- the public API of a finished run (ume_jax/trained_run.py) -------------

# Appended to the README's example (which ends with a reproduction on one
# device, ``again``): the run's numbers on its own 8 devices, then both.
_AND_ON_8 = """
import json
again_8 = trained_run.reproduce(WORKDIR, devices=jax.devices()[:8])
for n, r in ((1, again), (8, again_8)):
  print(json.dumps({"devices": n, "results": json.loads(json.dumps(r))}))
"""


def _python(code, *args):
  """``code`` run by a fresh interpreter (the suite's 8 fake devices);
  its stdout."""
  done = subprocess.run([sys.executable, "-c", code, *args],
                        capture_output=True, text=True, timeout=600,
                        cwd=ROOT)
  assert done.returncode == 0, done.stderr[-3000:]
  return done.stdout


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def _numbers_differ(want, got, path=""):
  """(paths whose values differ, largest |difference| of NLL / ECE)."""
  if isinstance(want, dict):
    assert want.keys() == got.keys(), (path, set(want) ^ set(got))
    out = [], 0.0
    for k in want:
      paths, gap = _numbers_differ(want[k], got[k], f"{path}/{k}")
      out = out[0] + paths, max(out[1], gap)
    return out
  if isinstance(want, list):
    assert len(want) == len(got), path
    return _numbers_differ(dict(enumerate(want)), dict(enumerate(got)), path)
  if want == got:
    return [], 0.0
  if re.search(r"/(ece|nll)(/|$)", path):
    return [], abs(want - got)
  return [path], 0.0


def test_the_readme_example_and_a_fresh_process_reproduce_results_json(job):
  """The README's example runs as written (against this run), and in the
  same fresh process the public API alone reproduces every number of its
  results.json on one device and on the 8 it trained on."""
  _, workdir = job
  with open(os.path.join(ROOT, "README.md")) as f:
    readme = f.read()
  section = readme.split("## A finished run, from Python and the shell")[1]
  code = section.split("```python\n")[1].split("```")[0]
  assert 'trained_run.load("workdirs/default")' in code
  code = code.replace('"workdirs/default"', "WORKDIR")
  out = _python(f"WORKDIR = {workdir!r}\n" + code + _AND_ON_8)
  printed = [line for line in out.strip().splitlines()
             if not line.startswith(("evaluating ", "{"))]   # progress
  with open(os.path.join(workdir, "results.json")) as f:
    on_disk = json.load(f)
  assert printed[0].startswith("['unimodal:image', 'unimodal:audio'")
  assert printed[1] == "(512, 10) (4, 10)"
  assert float(printed[2]) == on_disk["methods"]["mma"]["missing:audio"][
      "accuracy"]
  assert float(printed[3]) == on_disk["methods"]["ume_mma"]["full"][
      "accuracy"]
  runs = [json.loads(line) for line in out.splitlines()
          if line.startswith("{")]
  assert [r["devices"] for r in runs] == [1, 8]
  on_disk.pop("code")
  on_disk["per_seed"][0].pop("code")
  for r in runs:
    again = r["results"]
    again.pop("code")
    again["per_seed"][0].pop("code")
    paths, gap = _numbers_differ(on_disk, again)
    assert paths == [], (r["devices"], paths[:5])
    # The devices it trained on: bit for bit. One device: other batch
    # layouts, float rounding in the calibration metrics only.
    assert gap == 0.0 if r["devices"] == 8 else gap < 1e-6, gap
