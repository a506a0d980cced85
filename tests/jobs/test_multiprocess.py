"""A real multi-process job: 2 processes x 4 CPU devices on localhost, through
``launch/local_multiprocess.sh``, against 1 process x 8 devices.

Both runs see the same 8-device (data=4, fsdp=2) mesh and the same global
batches: each epoch is one seeded permutation of the whole training split,
cut into global batches, and process p reads the p-th slice of each. Here a
global batch is half the split, so which batch a step trains on shows in its
loss: a run stopped on one process count and resumed on another must
continue at the same global batch to match. Drop probabilities are 0
(masking itself is tested in test_masking.py).

About 6 minutes on 2 CPU cores: three runs of every stage, 3 steps each,
and two jobs resumed on the other process count (mma from step 2).
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
LAUNCHER = os.path.join(ROOT, "launch", "local_multiprocess.sh")
RUNS = ("pretrain/image", "pretrain/audio", "mma")
NUM_STEPS = 3
# Metrics are counts over 32 or 48 examples: one example changing its
# prediction moves a score by >= 1/48. Both layouts compute the same sums in
# a different order, so they could differ by float rounding only; in
# practice they agree exactly. Training losses may differ in the last bits.
METRIC_ATOL = 1e-6
LOSS_RTOL = 1e-5

CONFIG = '''
from tests import fakes
from ume_jax.config import common


def get_config():
  c = fakes.tiny_config()
  c.data.asset_path = {asset!r}
  c.data.data_dir = {data_dir!r}
  c.mesh.data, c.mesh.fsdp = 4, 2
  # Batch 32 = half the training split: steps 1, 2 are epoch 0, step 3
  # the first half of epoch 1.
  common.update_stages(c, num_epochs=0, num_steps={steps}, batch_size=32,
                       optim_values={{"warmup_steps": 1, "learning_rate": 1e-2}})
  c.methods = ("mma",)
  c.mma.drop_probs = {{"image": 0.0, "audio": 0.0}}
  # Training-set missingness, so that the equality below also covers it.
  c.train_missing.type, c.train_missing.ratio = "both", 0.5
  c.checkpoint.every_steps = 2
  c.log_every_steps = 1
  c.eval.batch_size = 16
  c.eval.missing_rates = (0.5,)
  return c
'''


def _env(devices: int | None = None) -> dict:
  """This test's environment minus its 8-device XLA flag (each run sets its
  own count) and any distributed settings of the caller."""
  env = {k: v for k, v in os.environ.items() if not k.startswith("UME_JAX_")}
  flags = re.sub(r"--xla_force_host_platform_device_count=\d+", "",
                 env.get("XLA_FLAGS", "")).split()
  if devices is not None:
    flags.append(f"--xla_force_host_platform_device_count={devices}")
  env.update(XLA_FLAGS=" ".join(flags), JAX_PLATFORMS="cpu",
             PYTHON=sys.executable, PYTHONPATH=os.pathsep.join(
                 [ROOT] + [p for p in [env.get("PYTHONPATH")] if p]))
  return env


def _run(cmd, env, log_path):
  r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                     timeout=400)
  with open(log_path, "w") as f:
    f.write(r.stdout + r.stderr)
  assert r.returncode == 0, f"{cmd} failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}"
  return r.stdout


def _two_processes(config, workdir, log_path):
  return _run([LAUNCHER, "2", "--", f"--config={config}",
               f"--workdir={workdir}"],
              dict(_env(), DEVICES_PER_PROCESS="4"), log_path)


def _read(path):
  with open(path) as f:
    return f.read()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  from tests.fakes import make_learnable_asset
  tmp = tmp_path_factory.mktemp("multiprocess")
  asset = make_learnable_asset(
      tmp / "asset.npz", sizes={"train": 64, "validation": 32, "test": 48})
  config = tmp / "config.py"
  config.write_text(CONFIG.format(asset=str(asset), data_dir=str(tmp / "tfds"),
                                  steps=NUM_STEPS))
  two, one = tmp / "two", tmp / "one"
  # Two processes first: they also prepare the tfds data (process 0 writes,
  # process 1 waits), which the 1-process run then reuses.
  out = _two_processes(config, two, tmp / "two.out")
  logs = [_read(two / "logs" / f"process_{i}.log") for i in range(2)]
  _run([sys.executable, "-m", "ume_jax.main", f"--config={config}",
        f"--workdir={one}"], _env(devices=8), tmp / "one.out")
  return {"tmp": tmp, "config": config, "two": two, "one": one,
          "launcher_out": out, "logs": logs,
          "results": json.loads(_read(two / "results.json"))}


def _assert_close(a, b, where="results"):
  if isinstance(a, dict):
    assert sorted(a) == sorted(b), where
    for k in a:
      _assert_close(a[k], b[k], f"{where}.{k}")
  elif isinstance(a, list):
    assert len(a) == len(b), where
    for i, (x, y) in enumerate(zip(a, b)):
      _assert_close(x, y, f"{where}[{i}]")
  elif isinstance(a, float):
    assert abs(a - b) <= METRIC_ATOL, f"{where}: {a} vs {b}"
  else:
    assert a == b, where


def _without_directories(results):
  """The results, less where each run lives (the two runs' workdirs differ;
  their records' identities and configs must not)."""
  out = json.loads(json.dumps(results))
  for r in [out] + out["per_seed"]:
    for record in r["provenance"].values():
      record.pop("directory", None)
  return out


def _metrics(workdir, run):
  with open(os.path.join(workdir, run, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def test_each_process_reports_itself(runs):
  host = socket.gethostname()
  for i, log in enumerate(runs["logs"]):
    assert log.splitlines()[0] == (
        f"[process {i}/2 {host}] 4 local / 8 global devices (cpu)")
  assert "all 2 processes succeeded" in runs["launcher_out"]


def test_two_processes_match_one_process(runs):
  one = json.loads(_read(runs["one"] / "results.json"))
  _assert_close(_without_directories(runs["results"]),
                _without_directories(one))
  assert runs["results"]["provenance"]["mma"]["identity"]
  assert runs["results"]["methods"]["mma"]["full"]["accuracy"] > 0.2
  for run in RUNS:  # the training itself, not only the evaluation
    two_m, one_m = _metrics(runs["two"], run), _metrics(runs["one"], run)
    assert [m["step"] for m in two_m] == [m["step"] for m in one_m]
    for a, b in zip(two_m, one_m):
      assert a["loss"] == pytest.approx(b["loss"], rel=LOSS_RTOL), run


def test_only_process_0_writes_results_and_logs(runs):
  two = runs["two"]
  for name in ("results.json", "results.md", "robustness.png"):
    assert os.path.getsize(two / name) > 0
  assert not [n for n in os.listdir(two) if n.endswith(".tmp")]
  # Process 1 neither prints nor writes the results table.
  assert "# avdigits: test accuracy" in runs["logs"][0]
  assert "# avdigits: test accuracy" not in runs["logs"][1]
  for run in RUNS:
    events = [n for n in os.listdir(two / run) if n.startswith("events.out")]
    assert len(events) == 1, (run, events)
    steps = [m["step"] for m in _metrics(two, run)]
    assert steps == list(range(1, NUM_STEPS + 1)), run


def test_checkpoints_exist(runs):
  for run in RUNS:
    d = runs["two"] / run
    steps = sorted(int(n) for n in os.listdir(d) if n.isdigit())
    assert steps == [2, NUM_STEPS], run
    for s in steps:
      assert {"state", "data_iter", "model"} <= set(os.listdir(d / str(s)))
    assert not [n for n in os.listdir(d) if "tmp" in n], run


def _stopped_at_step_2(source, target):
  """A copy of workdir ``source`` as if the job had stopped after step 2's
  checkpoint of its last run (mma): the pre-trainings are finished."""
  shutil.copytree(source, target, ignore=shutil.ignore_patterns("logs"))
  shutil.rmtree(target / "mma" / str(NUM_STEPS))
  for name in ("results.json", "results.md", "robustness.png"):
    os.remove(target / name)


# 2 -> 1 here; 1 -> 2 and 2 -> 4 at the pipeline level
# (tests/data/test_pipeline.py), keeping the suite's time down.
@pytest.mark.parametrize("saved,resumed", [("two", "one")])
def test_resume_on_another_process_count(runs, saved, resumed):
  """Stopped at step 2 on 2 processes, resumed on 1 (or 1 -> 2): every
  run's input position is remapped (the pre-trainings restore and train
  nothing; mma continues at global batch 2, the first half of epoch 1), so
  step 3 and the results are those of the run never interrupted.

  Compared within the tolerances of the 2-vs-1 test above: step 3 runs on
  the other layout, whose reductions could round otherwise (observed here:
  bit-identical to the saved layout's uninterrupted run). A wrong batch
  would change step 3's loss by far more."""
  target = runs["tmp"] / f"{saved}_to_{resumed}"
  _stopped_at_step_2(runs[saved], target)
  if resumed == "two":
    _two_processes(runs["config"], target, runs["tmp"] / f"{target.name}.out")
    log = _read(target / "logs" / "process_0.log")
  else:
    log = _run([sys.executable, "-m", "ume_jax.main",
                f"--config={runs['config']}", f"--workdir={target}"],
               _env(devices=8), runs["tmp"] / f"{target.name}.out")
  for name in ("unimodal:image", "unimodal:audio"):
    assert f"{name}: resumed from step {NUM_STEPS} of {NUM_STEPS}" in log
  assert f"mma: resumed from step 2 of {NUM_STEPS}" in log
  uninterrupted = runs[saved]
  for run in RUNS:
    got, want = _metrics(target, run), _metrics(uninterrupted, run)
    assert [m["step"] for m in got] == list(range(1, NUM_STEPS + 1)), run
    for a, b in zip(got, want):
      assert a["loss"] == pytest.approx(b["loss"], rel=LOSS_RTOL), run
  _assert_close(
      _without_directories(json.loads(_read(target / "results.json"))),
      _without_directories(json.loads(_read(uninterrupted / "results.json"))))


def test_rerun_resumes_and_evaluates_the_same(runs):
  before = {run: _metrics(runs["two"], run) for run in RUNS}
  _two_processes(runs["config"], runs["two"], runs["tmp"] / "rerun.out")
  log0 = _read(runs["two"] / "logs" / "process_0.log")
  for name in ("unimodal:image", "unimodal:audio", "mma"):
    assert f"{name}: resumed from step {NUM_STEPS} of {NUM_STEPS}" in log0
  assert not re.search(r"^\[\S+\] step \d+/", log0, re.M)  # no step trained
  for run in RUNS:
    assert _metrics(runs["two"], run) == before[run], run
  _assert_close(json.loads(_read(runs["two"] / "results.json")),
                runs["results"])
