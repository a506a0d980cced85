"""Which arguments ``jax.distributed.initialize`` would get, from flags and
environment, without starting anything (``distributed.resolve`` is pure)."""
import pytest

from ume_jax.infra import distributed

TIMEOUT = distributed.DEFAULT_TIMEOUT_S


def _env(**values):
  return {f"UME_JAX_{k.upper()}": str(v) for k, v in values.items()}


@pytest.mark.parametrize("flag,env,want", [
    (False, {}, False),
    (True, {}, True),
    (False, _env(distributed="1"), True),
    (False, _env(distributed="TRUE"), True),
    (False, _env(distributed="0"), False),
    (False, _env(distributed=""), False),
    (True, _env(distributed="0"), True),   # the flag wins
])
def test_requested_by_flag_or_env(flag, env, want):
  assert distributed.requested(flag, env) is want


def test_unknown_enable_value_is_an_error():
  with pytest.raises(distributed.DistributedError, match="UME_JAX_DISTRIBUTED"):
    distributed.requested(False, _env(distributed="maybe"))


def test_nothing_given_leaves_everything_to_cluster_detection():
  # TPU pods and srun tasks: JAX finds coordinator, count and rank itself.
  assert distributed.resolve(environ={}) == {
      "initialization_timeout": TIMEOUT}


def test_flags_give_explicit_peers_and_switch_detection_off():
  got = distributed.resolve(coordinator_address="10.0.0.1:1234",
                            num_processes=4, process_id=3, timeout_s=60,
                            environ={})
  assert got == {"coordinator_address": "10.0.0.1:1234", "num_processes": 4,
                 "process_id": 3, "initialization_timeout": 60,
                 "cluster_detection_method": "deactivate"}


def test_environment_gives_explicit_peers():
  env = _env(coordinator="localhost:5555", num_processes=2, process_id=0)
  got = distributed.resolve(environ=env)
  assert got == {"coordinator_address": "localhost:5555", "num_processes": 2,
                 "process_id": 0, "initialization_timeout": TIMEOUT,
                 "cluster_detection_method": "deactivate"}


def test_flags_win_over_environment():
  env = _env(coordinator="localhost:5555", num_processes=2, process_id=1)
  got = distributed.resolve(coordinator_address="host0:7777", process_id=0,
                            environ=env)
  assert got["coordinator_address"] == "host0:7777"
  assert got["process_id"] == 0       # a flag 0 is a value, not "unset"
  assert got["num_processes"] == 2    # from the environment


def test_partial_values_keep_cluster_detection_for_the_rest():
  # E.g. SLURM with a chosen coordinator: count and rank come from srun.
  got = distributed.resolve(coordinator_address="node001:4444", environ={})
  assert got == {"coordinator_address": "node001:4444",
                 "initialization_timeout": TIMEOUT}


@pytest.mark.parametrize("kwargs,match", [
    (dict(coordinator_address="localhost"), "not host:port"),
    (dict(coordinator_address="localhost:port"), "not host:port"),
    (dict(num_processes=0), "at least 1"),
    (dict(num_processes=2, process_id=2), r"process_id=2 is not in \[0, "),
    (dict(process_id=-1), "process_id=-1"),
    (dict(timeout_s=0), "distributed_timeout_s=0"),
])
def test_values_that_cannot_work_are_refused(kwargs, match):
  with pytest.raises(distributed.DistributedError, match=match):
    distributed.resolve(environ={}, **kwargs)


def test_non_integer_environment_names_the_variable():
  with pytest.raises(distributed.DistributedError,
                     match="UME_JAX_NUM_PROCESSES='two'"):
    distributed.resolve(environ=_env(num_processes="two"))


def test_failure_explained_in_one_paragraph():
  kwargs = distributed.resolve(coordinator_address="10.0.0.1:1234",
                               num_processes=2, process_id=1, environ={})
  text = distributed.explain_failure(
      kwargs, RuntimeError("DEADLINE_EXCEEDED: Barrier timed out\nstack..."))
  assert "\n" not in text
  assert "coordinator_address=10.0.0.1:1234" in text
  assert "DEADLINE_EXCEEDED: Barrier timed out" in text
  assert "stack" not in text
  for hint in ("reachable", "same num_processes", "--distributed_timeout_s",
               "port is free"):
    assert hint in text


def test_no_cluster_found_explains_what_to_pass():
  text = distributed.explain_failure(
      distributed.resolve(environ={}),
      ValueError("coordinator_address should be defined."))
  assert "no cluster environment was detected" in text
  assert "--coordinator_address=HOST:PORT" in text
  assert "UME_JAX_COORDINATOR" in text


def test_not_requested_starts_nothing(monkeypatch):
  monkeypatch.delenv("UME_JAX_DISTRIBUTED", raising=False)
  called = []
  monkeypatch.setattr(distributed.jax.distributed, "initialize",
                      lambda **kw: called.append(kw))
  assert distributed.initialize(False) is False
  assert not called


def test_initialize_failure_becomes_distributed_error(monkeypatch):
  def fail(**kwargs):
    del kwargs
    raise RuntimeError("UNAVAILABLE: failed to connect to all addresses")
  monkeypatch.setattr(distributed.jax.distributed, "initialize", fail)
  monkeypatch.setenv("JAX_CPU_COLLECTIVES_IMPLEMENTATION", "gloo")
  with pytest.raises(distributed.DistributedError,
                     match="UNAVAILABLE: failed to connect.* reachable"):
    distributed.initialize(True, coordinator_address="localhost:1",
                           num_processes=2, process_id=1)


class _Exited(Exception):
  pass


@pytest.fixture
def exits(monkeypatch):
  """failing_fast in a job that started the runtime; os._exit recorded."""
  codes = []

  def fake_exit(code):
    codes.append(code)
    raise _Exited()
  monkeypatch.setattr(distributed.jax.distributed, "is_initialized",
                      lambda: True)
  monkeypatch.setattr(distributed.os, "_exit", fake_exit)
  return codes


def test_failure_exits_without_waiting_for_peers(exits, capsys):
  with pytest.raises(_Exited):
    with distributed.failing_fast():
      raise SystemExit("error: bad config")
  assert exits == [1]
  err = capsys.readouterr().err
  assert "error: bad config" in err and "without waiting" in err


def test_bug_prints_traceback_and_exits(exits, capsys):
  with pytest.raises(_Exited):
    with distributed.failing_fast():
      raise ZeroDivisionError("oops")
  assert exits == [1]
  assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize("code", [0, None, 143])
def test_success_and_preemption_exit_normally(exits, code):
  with pytest.raises(SystemExit):
    with distributed.failing_fast(graceful_exit_codes=(143,)):
      raise SystemExit(code)
  assert not exits


def test_single_process_failures_propagate(monkeypatch):
  monkeypatch.setattr(distributed.jax.distributed, "is_initialized",
                      lambda: False)
  with pytest.raises(ZeroDivisionError):
    with distributed.failing_fast():
      raise ZeroDivisionError()
