"""Validation during training, the best checkpoint and early stopping
(ume_jax/train/validation.py, the trainer's use of it)."""
import json
import os

import jax
import numpy as np
import pytest

from tests import fakes as fx
from ume_jax import experiment
from ume_jax import methods as methods_lib
from ume_jax.config import common
from ume_jax.infra import checkpoint
from ume_jax.train import trainer, validation


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("val")
  c = fx.tiny_config()
  c.data.asset_path = fx.make_learnable_asset(tmp / "asset.npz")
  c.data.data_dir = str(tmp / "tfds")
  common.update_stages(c, num_epochs=0, num_steps=12, batch_size=16,
                       optim_values={"warmup_steps": 1})
  c.checkpoint.asynchronous = False
  s = experiment.setup(c)
  return c, s


def _train(setting, directory, scores, patience=0):
  """Trains the uni-modal image model with a scripted validation: the
  score at step k is ``scores[k]``; returns the params seen at each step."""
  c, s = setting
  seen = {}
  calls = iter(sorted(scores))

  def validate(params):
    step = next(calls)
    seen[step] = jax.tree.map(np.asarray, jax.device_get(params))
    return {"full": scores[step], "score": scores[step]}

  cfg = dict(every_steps=3, select="best", patience=patience)
  method = s.methods.unimodal["image"]
  trainer.train(method, c.pretrain, dataset=s.dataset, mesh=s.mesh,
                directory=str(directory), seed=0, checkpoint_cfg=c.checkpoint,
                log_every_steps=3, validate=validate, validation_cfg=cfg)
  return method, seen


def _logged(directory):
  with open(os.path.join(directory, "metrics.jsonl")) as f:
    rows = [json.loads(l) for l in f]
  return {r["step"]: r["val/score"] for r in rows if "val/score" in r}


def test_the_best_checkpoint_is_the_best_logged_validation(setting,
                                                           tmp_path):
  scores = {3: 0.2, 6: 0.9, 9: 0.4, 12: 0.5}
  method, seen = _train(setting, tmp_path / "run", scores)
  logged = _logged(tmp_path / "run")
  assert logged == scores
  best_step = max(logged, key=logged.get)
  record = validation.read_record(str(tmp_path / "run"))
  assert record["step"] == best_step == 6 and record["score"] == 0.9
  # The best checkpoint holds the parameters validated at that step; the
  # run directory still holds the last (what a rerun resumes from).
  _, s = setting
  abstract = methods_lib.abstract_params(method, s.mesh)
  best, step = checkpoint.restore_params(
      validation.best_dir(str(tmp_path / "run")), method.fingerprint,
      abstract)
  assert step == 6
  for a, b in zip(jax.tree.leaves(best), jax.tree.leaves(seen[6])):
    np.testing.assert_array_equal(np.asarray(a), b)
  last, last_step = checkpoint.restore_params(
      str(tmp_path / "run"), method.fingerprint, abstract)
  assert last_step == 12
  assert any(np.abs(np.asarray(a) - b).max() > 0 for a, b in
             zip(jax.tree.leaves(last), jax.tree.leaves(seen[6])))
  assert validation.chosen(str(tmp_path / "run"), "best") == (
      validation.best_dir(str(tmp_path / "run")), "best")
  assert validation.chosen(str(tmp_path / "run"), "last") == (
      str(tmp_path / "run"), "last")


def test_patience_stops_early_and_a_rerun_trains_no_further(setting,
                                                             tmp_path):
  scores = {3: 0.5, 6: 0.4, 9: 0.3, 12: 0.9}
  _train(setting, tmp_path / "run", scores, patience=2)
  record = validation.read_record(str(tmp_path / "run"))
  assert (record["step"], record["stopped_at"]) == (3, 9)
  assert checkpoint.saved_steps(str(tmp_path / "run"))[-1] == 9
  assert set(_logged(tmp_path / "run")) == {3, 6, 9}
  _train(setting, tmp_path / "run", {}, patience=2)   # no validation runs
  assert checkpoint.saved_steps(str(tmp_path / "run"))[-1] == 9


def test_a_record_that_does_not_match_the_best_checkpoint_is_relearnt(
    tmp_path):
  t = validation.Tracker(str(tmp_path), patience=1)
  assert t.update(4, {"score": 0.7}) and not t.update(8, {"score": 0.6})
  assert t.should_stop()
  t.write()
  assert validation.Tracker.load(str(tmp_path), 1, best_step=4).score == 0.7
  # The checkpoint moved on (a crash between it and the record).
  stale = validation.Tracker.load(str(tmp_path), 1, best_step=8)
  assert stale.step is None and stale.score == -np.inf
