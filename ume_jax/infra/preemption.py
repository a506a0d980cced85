"""Where a preemption notice is noticed: SIGTERM (or Ctrl-C) -> save at a
step boundary.

Schedulers announce preemption (and SLURM an approaching time limit, with
``--signal=TERM@<seconds>``) by sending SIGTERM. The training loop asks
``reached(step)`` after every step; when it says yes the trainer saves a
checkpoint of that step and raises ``Preempted``, and a rerun of the same
command resumes from it.

- One process: a Python SIGTERM handler sets a flag (installed by
  ``notices()`` for the whole job, the previous handler restored after). A
  notice during evaluation lets evaluation finish: it has nothing to save.
- Ctrl-C (SIGINT), one process: the same within a training run (the
  trainer's ``training()`` block): the step finishes, is saved, the process
  prints one line and exits **130**; rerun to resume. Outside a training
  run (preparing data, evaluating, between stages) there is nothing in
  progress to save, so it stops at once with ``Interrupted`` (finished
  stages' checkpoints are complete and kept), as does a notice still
  pending when a training run ends, and a second Ctrl-C. ``main`` prints one
  line for it, and for a Ctrl-C before ``notices()`` starts, and exits 130.
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
# The status of a process ended by Ctrl-C (128 + 2).
INTERRUPTED_STATUS = 130

_NOTICE = threading.Event()
_SIGNAL = [None]      # the signal that set _NOTICE (None: JAX's sync point)
_TRAINING = [0]       # depth of training() blocks


def _what() -> str:
  if _SIGNAL[0] == signal.SIGINT:
    return "Ctrl-C (SIGINT)"
  return "preemption notice (SIGTERM)"


class Preempted(Exception):
  """Training stopped on a preemption notice after saving a checkpoint."""

  def __init__(self, name: str, step: int, directory: str):
    super().__init__(
        f"{name}: {_what()} received; saved a checkpoint of"
        f" step {step} in {directory}. Rerun the same command to resume.")
    self.step = step
    self.exit_status = (INTERRUPTED_STATUS if _SIGNAL[0] == signal.SIGINT
                        else EXIT_STATUS)


class Interrupted(KeyboardInterrupt):
  """Ctrl-C where there is nothing in progress to save."""

  def __init__(self, where: str = "outside a training run"):
    super().__init__(
        f"Ctrl-C (SIGINT) {where}: stopped with nothing in progress to save;"
        " the checkpoints of finished stages and steps are kept. Rerun the"
        " same command to resume.")


def _on_signal(signum, frame):
  del frame
  if signum == signal.SIGINT:
    if _NOTICE.is_set() and _SIGNAL[0] == signal.SIGINT:
      raise Interrupted("a second time, before the step finished")
    if not _TRAINING[0]:
      raise Interrupted()
  if not _NOTICE.is_set():
    _SIGNAL[0] = signum
  _NOTICE.set()


@contextlib.contextmanager
def notices():
  """Within this block SIGTERM (and Ctrl-C, see the module doc) is a notice
  instead of the end of the process.

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
  _SIGNAL[0] = None
  previous = {sig: signal.signal(sig, _on_signal)
              for sig in (signal.SIGTERM, signal.SIGINT)}
  try:
    yield
  finally:
    for sig, handler in previous.items():
      signal.signal(sig, handler)


@contextlib.contextmanager
def training():
  """A training run: within it Ctrl-C waits for the step boundary.

  A Ctrl-C notice still pending when the block ends normally (it came after
  the last step's check) stops the job here: the run's checkpoints are
  complete, and evaluation or the next stage should not start.
  """
  _TRAINING[0] += 1
  try:
    yield
  finally:
    _TRAINING[0] -= 1
  if (not _TRAINING[0] and _NOTICE.is_set()
      and _SIGNAL[0] == signal.SIGINT):
    raise Interrupted("at the end of a training run")


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
