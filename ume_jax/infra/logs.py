"""Training logs: JSONL always, TensorBoard event files, a progress line.

Only process 0 writes; other processes get a writer that does nothing, so
call sites need no ``if jax.process_index() == 0``.
"""
import json
import os
import sys
import time

import jax


class MetricWriter:
  """Appends ``{"step": s, **scalars}`` lines to ``<logdir>/metrics.jsonl``
  and mirrors them to TensorBoard event files via tensorboardX."""

  def __init__(self, logdir: str, *, tensorboard: bool = True):
    self._active = jax.process_index() == 0
    self._tb = None
    if not self._active:
      return
    os.makedirs(logdir, exist_ok=True)
    self._jsonl = open(os.path.join(logdir, "metrics.jsonl"), "a")
    if tensorboard:
      from tensorboardX import SummaryWriter  # no TensorFlow needed
      self._tb = SummaryWriter(logdir)

  def write(self, step: int, scalars: dict[str, float]):
    if not self._active:
      return
    record = {"step": int(step), **{k: float(v) for k, v in scalars.items()}}
    self._jsonl.write(json.dumps(record) + "\n")
    self._jsonl.flush()
    if self._tb is not None:
      for k, v in scalars.items():
        self._tb.add_scalar(k, float(v), int(step))

  def close(self):
    if self._active:
      self._jsonl.close()
      if self._tb is not None:
        self._tb.close()


class Progress:
  """One line per report: step, loss, steps/s and ETA."""

  def __init__(self, name: str, total_steps: int, first_step: int = 0):
    self.name, self.total = name, total_steps
    self._last_step, self._last_time = first_step, time.perf_counter()

  def report(self, step: int, scalars: dict[str, float]):
    now = time.perf_counter()
    rate = (step - self._last_step) / max(now - self._last_time, 1e-9)
    self._last_step, self._last_time = step, now
    eta = (self.total - step) / rate if rate > 0 else float("inf")
    parts = " ".join(f"{k} {v:.4f}" for k, v in sorted(scalars.items()))
    if jax.process_index() == 0:
      print(f"[{self.name}] step {step}/{self.total} {parts} | "
            f"{rate:.1f} steps/s | ETA {_hms(eta)}", file=sys.stdout, flush=True)
    return rate


def announce(message: str):
  """A line for the person watching the run (process 0 only)."""
  if jax.process_index() == 0:
    print(message, file=sys.stdout, flush=True)


def _hms(seconds: float) -> str:
  if seconds == float("inf"):
    return "?"
  m, s = divmod(int(seconds), 60)
  h, m = divmod(m, 60)
  return f"{h}:{m:02d}:{s:02d}"
