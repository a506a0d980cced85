"""Validation during training: when it runs, which checkpoint is the best,
when a run stops early, and which checkpoint the next stage reads.

Every ``validation.every_steps`` steps (and at the last step) a run scores
its current parameters on the validation split (``experiment`` builds the
scoring function: the run's own scenarios, the primary metric); the scores
go to ``metrics.jsonl`` / TensorBoard as ``val/<scenario>`` and
``val/score`` (their mean). A better score than any before saves the state
in ``<run>/best/`` (an Orbax checkpoint of its own, one step kept) and then
``<run>/best/record.json`` with the step and scores. The latest checkpoint
is kept as before and is what a rerun resumes from. With ``patience`` > 0 a
run stops after that many validations without improvement; the record
says so, and a rerun does not train it further.

``validation.select`` says which checkpoint evaluation and fine-tuning read:
``best`` (the default; a run that never validated has no best and its last
is used, said so in ``results.json``) or ``last``.
"""
import dataclasses
import json
import math

import jax

from ume_jax.config import rules
from ume_jax.infra import paths

CONFIG_KEYS = {
    "every_steps": rules.integer(0),      # 0: no validation during training
    "select": rules.one_of("best", "last"),
    "patience": rules.integer(0),         # validations; 0: never stop early
}
BEST = "best"
RECORD = "record.json"


def best_dir(run_dir: str) -> str:
  return paths.join(run_dir, BEST)


def read_record(run_dir: str) -> dict | None:
  """The run's best-checkpoint record, or None if it never validated."""
  path = paths.join(best_dir(run_dir), RECORD)
  if not paths.isfile(path):
    return None
  return json.loads(paths.read_text(path))


def chosen(run_dir: str, select: str) -> tuple[str, str]:
  """(directory to read parameters from, "best" or "last")."""
  if select == "best" and read_record(run_dir) is not None:
    return best_dir(run_dir), "best"
  return run_dir, "last"


@dataclasses.dataclass
class Tracker:
  """The best score so far of one run, and its early-stopping count."""

  run_dir: str
  patience: int = 0
  step: int | None = None          # of the best checkpoint
  score: float = -math.inf
  scores: dict = dataclasses.field(default_factory=dict)
  since_best: int = 0              # validations without improvement
  stopped_at: int | None = None

  @classmethod
  def load(cls, run_dir: str, patience: int, best_step: int | None
           ) -> "Tracker":
    """The record in ``run_dir`` if it describes the best checkpoint's
    ``best_step`` (a crash between saving the checkpoint and the record
    leaves them apart: the checkpoint is kept, its score relearnt)."""
    record = read_record(run_dir) or {}
    tracker = cls(run_dir, patience)
    if best_step is not None and record.get("step") == best_step:
      tracker.step, tracker.score = best_step, float(record["score"])
      tracker.scores = dict(record.get("scores", {}))
      tracker.since_best = int(record.get("since_best", 0))
      tracker.stopped_at = record.get("stopped_at")
    return tracker

  def update(self, step: int, scores: dict) -> bool:
    """Counts a validation at ``step``; True if it is the best so far."""
    if scores["score"] > self.score:
      self.step, self.score, self.scores = step, scores["score"], dict(scores)
      self.since_best = 0
      return True
    self.since_best += 1
    return False

  def should_stop(self) -> bool:
    return self.patience > 0 and self.since_best >= self.patience

  def write(self) -> None:
    """The record, atomically (process 0; the directory is shared)."""
    if jax.process_index() != 0:
      return
    paths.write_text(paths.join(best_dir(self.run_dir), RECORD), json.dumps(
        {"step": self.step, "score": self.score, "scores": self.scores,
         "since_best": self.since_best, "stopped_at": self.stopped_at},
        indent=1))
