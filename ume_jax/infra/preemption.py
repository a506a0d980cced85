"""Where a preemption notice is noticed: SIGTERM -> save at a step boundary.

Schedulers announce preemption (and SLURM an approaching time limit, with
``--signal=TERM@<seconds>``) by sending SIGTERM. The training loop asks
``reached(step)`` after every step; when it says yes the trainer saves a
checkpoint of that step and raises ``Preempted``, and a rerun of the same
command resumes from it.

- One process: a Python SIGTERM handler sets a flag (installed by
  ``notices()`` for the whole job, the previous handler restored after). A
  notice during evaluation lets evaluation finish: it has nothing to save.
- Several processes: every process must save the *same* step, so the
  decision is JAX's preemption sync point, which the distributed runtime
  (``jax.distributed.initialize``) arms on SIGTERM and agrees on across
  processes.
"""
import contextlib
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


_NOTICE = threading.Event()


def _on_sigterm(signum, frame):
  del signum, frame
  _NOTICE.set()


@contextlib.contextmanager
def notices():
  """Within this block SIGTERM is a notice instead of the end of the process.

  ``experiment.run`` holds it for the whole job, so a notice that arrives
  between stages (while compiling or evaluating) is acted on at the next
  training step. Only on the main thread of a single process: several
  processes use JAX's preemption service (see ``reached``).
  """
  if (jax.process_count() > 1
      or threading.current_thread() is not threading.main_thread()):
    yield
    return
  _NOTICE.clear()
  previous = signal.signal(signal.SIGTERM, _on_sigterm)
  try:
    yield
  finally:
    signal.signal(signal.SIGTERM, previous)


def reached(step: int) -> bool:
  """True when the job should checkpoint ``step`` and stop.

  Called after every training step by every process (the sync point's
  protocol needs all processes to call it at each step).
  """
  if jax.process_count() == 1:
    return _NOTICE.is_set()
  try:
    return multihost_utils.reached_preemption_sync_point(step)
  except RuntimeError:   # preemption service disabled in this runtime
    return False
