"""Ctrl-C (SIGINT) in one process: a preemption notice within a training run
(checkpoint at the step boundary), an immediate ``Interrupted`` outside one
(evaluation, data preparation), and SIGTERM as before."""
import os
import signal
import time

import pytest

from ume_jax.infra import preemption


def _send(sig):
  os.kill(os.getpid(), sig)
  time.sleep(0.05)   # Python runs the handler at the next bytecode


def test_ctrl_c_in_a_training_run_is_a_notice_for_the_step_boundary():
  with preemption.notices():
    with pytest.raises(preemption.Interrupted,
                       match="at the end of a training run"):
      with preemption.training():
        assert not preemption.reached(1)
        _send(signal.SIGINT)             # no exception mid-step
        assert preemption.reached(2)     # the trainer saves step 2 ...
        error = preemption.Preempted("image", 2, "/wd/pretrain/image")
        # (here the trainer would raise it: the block ends with it instead
        # of with Interrupted)
  assert "Ctrl-C (SIGINT) received; saved a checkpoint of step 2" in str(
      error)
  assert error.exit_status == preemption.INTERRUPTED_STATUS == 130


def test_a_preempted_training_run_ends_with_preempted_not_interrupted():
  with preemption.notices():
    with pytest.raises(preemption.Preempted):
      with preemption.training():
        _send(signal.SIGINT)
        assert preemption.reached(3)
        raise preemption.Preempted("image", 3, "/wd")


def test_a_second_ctrl_c_stops_at_once():
  with preemption.notices():
    with pytest.raises(preemption.Interrupted, match="a second time"):
      with preemption.training():
        _send(signal.SIGINT)
        _send(signal.SIGINT)


def test_ctrl_c_during_evaluation_stops_at_once_in_words():
  with preemption.notices():
    with pytest.raises(preemption.Interrupted) as info:
      _send(signal.SIGINT)   # e.g. inside experiment.evaluate
      time.sleep(5)
  assert "outside a training run" in str(info.value)
  assert "Rerun the same command to resume" in str(info.value)


def test_sigterm_is_still_a_notice_everywhere_and_says_sigterm():
  with preemption.notices():
    _send(signal.SIGTERM)   # between stages: acted on at the next step
    assert preemption.reached(1)
    error = preemption.Preempted("mma", 1, "/wd/mma")
  assert "preemption notice (SIGTERM)" in str(error)
  assert error.exit_status == preemption.EXIT_STATUS == 143


def test_the_previous_handlers_come_back():
  before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
  with preemption.notices():
    pass
  assert (signal.getsignal(signal.SIGINT),
          signal.getsignal(signal.SIGTERM)) == before
