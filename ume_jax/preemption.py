"""Where a preemption notice is noticed: SIGTERM -> save at a step boundary.

Schedulers announce preemption (and SLURM an approaching time limit, with
``--signal=TERM@<seconds>``) by sending SIGTERM. The training loop asks
``reached(step)`` after every step; when it says yes the trainer saves a
checkpoint of that step and raises ``Preempted``, and a rerun of the same
command resumes from it.

- One process: a Python SIGTERM handler sets a flag (installed only while
  training, the previous handler restored after).
- Several processes: every process must save the *same* step, so the
  decision is JAX's preemption sync point, which the distributed runtime
  (``jax.distributed.initialize``) arms on SIGTERM and agrees on across
  processes.
"""
import signal
import threading

import jax
from jax.experimental import multihost_utils

# The status of a process ended by SIGTERM (128 + 15), so schedulers that
# restart failed tasks restart this one; the rerun resumes.
EXIT_STATUS = 143


class Preempted(Exception):
  """Training stopped on a preemption notice after saving a checkpoint."""

  def __init__(self, name: str, step: int, directory: str):
    super().__init__(
        f"{name}: preemption notice (SIGTERM) received; saved a checkpoint of"
        f" step {step} in {directory}. Rerun the same command to resume.")
    self.step = step


class Watch:
  """Context manager: ``reached(step)`` is True once a notice arrived."""

  def __init__(self):
    self._flag = threading.Event()
    self._previous = None
    self._multiprocess = jax.process_count() > 1

  def __enter__(self):
    # signal.signal only works on the main thread; elsewhere (a test runner
    # thread) preemption is simply not watched.
    if (not self._multiprocess
        and threading.current_thread() is threading.main_thread()):
      self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
    return self

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
      self._previous = None
    return False

  def _on_sigterm(self, signum, frame):
    del signum, frame
    self._flag.set()

  def reached(self, step: int) -> bool:
    if not self._multiprocess:
      return self._flag.is_set()
    try:
      return multihost_utils.reached_preemption_sync_point(step)
    except RuntimeError:   # preemption service disabled in this runtime
      return False
