"""Run records (ume_jax/train/provenance.py): a rerun resumes only the
training its record describes."""
import json
import os

import pytest

from ume_jax.train import provenance

FP = {"training": {"optim": {"learning_rate": 1e-3}, "num_steps": 30},
      "seed": 0}


def test_records_a_fresh_run_and_resumes_the_same_one(tmp_path):
  d = str(tmp_path / "run")
  provenance.check_or_record(d, FP, {"a": 1}, has_checkpoint=False)
  record = provenance.read(d)
  assert record["fingerprint"] == FP and record["config"] == {"a": 1}
  assert record["identity"] == provenance.identity(FP)
  provenance.check_or_record(d, json.loads(json.dumps(FP)), {"a": 2},
                             has_checkpoint=True)   # same training: resumes


def test_another_training_is_refused_naming_the_keys(tmp_path):
  d = str(tmp_path / "run")
  provenance.check_or_record(d, FP, {}, has_checkpoint=False)
  other = {"training": {"optim": {"learning_rate": 0.5}, "num_steps": 40},
           "seed": 0}
  with pytest.raises(provenance.ProvenanceError) as e:
    provenance.check_or_record(d, other, {}, has_checkpoint=True)
  msg = str(e.value)
  assert "training.optim.learning_rate: trained with 0.001, now 0.5" in msg
  assert "training.num_steps: trained with 30, now 40" in msg
  assert d in msg and "fresh --workdir" in msg


def test_checkpoints_without_a_record_are_refused(tmp_path):
  d = tmp_path / "run"
  os.makedirs(d / "30")
  with pytest.raises(provenance.ProvenanceError, match="no provenance.json"):
    provenance.check_or_record(str(d), FP, {}, has_checkpoint=True)


def test_identity_is_stable_and_distinguishes():
  assert provenance.identity(FP) == provenance.identity(
      json.loads(json.dumps(FP)))
  assert provenance.identity(FP) != provenance.identity(dict(FP, seed=1))
