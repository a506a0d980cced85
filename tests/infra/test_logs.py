"""Training logs after a resume: metrics.jsonl and TensorBoard hold each
step once, with the replayed values; no empty events files."""
import json
import os

from tests import fakes as fx
from ume_jax.infra import logs


def _jsonl(logdir):
  with open(os.path.join(logdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def _run(logdir, steps, offset, resume_step=None):
  writer = logs.MetricWriter(logdir, resume_step=resume_step)
  for s in steps:
    writer.write(s, {"loss": s + offset, "learning_rate": 0.5 / s})
  writer.close()


def test_a_resume_logs_each_step_once_with_the_replayed_values(tmp_path):
  logdir = str(tmp_path)
  _run(logdir, range(1, 9), 0.0)          # crashed after step 8 ...
  _run(logdir, range(7, 11), 100.0, 6)    # ... resumed from step 6
  rows = _jsonl(logdir)
  assert [r["step"] for r in rows] == list(range(1, 11))
  assert [r["loss"] for r in rows] == [1, 2, 3, 4, 5, 6, 107, 108, 109, 110]
  found, files = fx.tensorboard_scalars(logdir)
  assert sorted(found) == sorted((t, s) for t in ("loss", "learning_rate")
                                 for s in range(1, 11))
  assert all(len(v) == 1 for v in found.values()), found
  assert [found[("loss", s)][0] for s in range(1, 11)] == [
      1, 2, 3, 4, 5, 6, 107, 108, 109, 110]
  assert found[("learning_rate", 4)][0 ] == 0.125
  assert len(files) == 2   # the kept old steps, merged; the resumed run's


def test_a_rerun_with_nothing_to_log_adds_no_events_file(tmp_path):
  logdir = str(tmp_path)
  _run(logdir, range(1, 5), 0.0)
  before = fx.tensorboard_scalars(logdir)
  for _ in range(3):   # a finished run, rerun: resumes at its last step
    _run(logdir, [], 0.0, 4)
  assert fx.tensorboard_scalars(logdir) == before
  assert len(before[1]) == 1


def test_empty_events_files_of_earlier_runs_are_removed(tmp_path):
  from tensorboardX import SummaryWriter
  logdir = str(tmp_path)
  SummaryWriter(logdir).close()   # what earlier versions left per rerun
  _run(logdir, range(1, 3), 0.0, 0)
  found, files = fx.tensorboard_scalars(logdir)
  assert len(files) == 1 and len(found) == 4


def test_a_half_written_last_row_is_dropped(tmp_path):
  logdir = str(tmp_path)
  _run(logdir, range(1, 4), 0.0)
  with open(os.path.join(logdir, "metrics.jsonl"), "a") as f:
    f.write('{"step": 4, "lo')   # killed mid-write
  _run(logdir, [4], 0.0, 3)
  assert [r["step"] for r in _jsonl(logdir)] == [1, 2, 3, 4]


def test_write_summary_replaces_a_rerun_evaluation(tmp_path):
  logdir = str(tmp_path)
  _run(logdir, range(1, 3), 0.0)
  logs.write_summary(logdir, {"eval/full/accuracy": 0.5}, step=2)
  logs.write_summary(logdir, {"eval/full/accuracy": 0.75}, step=2)
  found, _ = fx.tensorboard_scalars(logdir)
  assert found[("eval/full/accuracy", 2)] == [0.75]
  assert found[("loss", 2)] == [2.0]
  logs.write_summary(logdir, {})   # nothing to write: nothing created
  assert len(fx.tensorboard_scalars(logdir)[1]) == 2
