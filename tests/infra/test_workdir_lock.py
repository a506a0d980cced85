"""One run per workdir: the lock names its holder, refuses a live one, takes
over a dead one's, and is held once per multi-process job."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import pytest
from jax.experimental import multihost_utils

from ume_jax.infra import workdir_lock as wl

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))


def _write_lock(workdir, **holder):
  os.makedirs(workdir, exist_ok=True)
  with open(wl.lock_path(workdir), "w") as f:
    json.dump(holder, f)


def _dead_pid():
  proc = subprocess.Popen([sys.executable, "-c", "pass"])
  proc.wait()
  return proc.pid


def test_the_lock_names_its_holder_and_goes_when_the_block_ends(tmp_path):
  workdir = str(tmp_path / "wd")
  with wl.held(workdir):
    with open(wl.lock_path(workdir)) as f:
      holder = json.load(f)
    assert holder["host"] == socket.gethostname()
    assert holder["pid"] == os.getpid()
    assert holder["started"].endswith("+00:00")
    # A second run in the same workdir (here: this process again) is refused.
    with pytest.raises(wl.WorkdirLockedError,
                       match=rf"pid {os.getpid()}, started"):
      wl.acquire(workdir)
  assert not os.path.exists(wl.lock_path(workdir))


def test_the_lock_is_released_when_the_block_raises(tmp_path):
  workdir = str(tmp_path)
  with pytest.raises(KeyError):
    with wl.held(workdir):
      raise KeyError("boom")
  assert not os.path.exists(wl.lock_path(workdir))


def test_a_live_process_of_this_host_keeps_the_lock(tmp_path):
  sleeper = subprocess.Popen(["sleep", "30"])
  try:
    _write_lock(str(tmp_path), host=socket.gethostname(), pid=sleeper.pid,
                started="2026-01-01T00:00:00+00:00")
    with pytest.raises(wl.WorkdirLockedError) as info:
      with wl.held(str(tmp_path)):
        pass
    message = str(info.value)
    assert f"pid {sleeper.pid}" in message
    assert "2026-01-01T00:00:00+00:00" in message
    assert wl.lock_path(str(tmp_path)) in message
    # The holder's lock is untouched.
    with open(wl.lock_path(str(tmp_path))) as f:
      assert json.load(f)["pid"] == sleeper.pid
  finally:
    sleeper.kill()
    sleeper.wait()


def test_a_dead_process_lock_is_taken_over_with_a_warning(tmp_path, caplog):
  pid = _dead_pid()
  _write_lock(str(tmp_path), host=socket.gethostname(), pid=pid,
              started="2026-01-01T00:00:00+00:00")
  with wl.held(str(tmp_path)):
    with open(wl.lock_path(str(tmp_path))) as f:
      assert json.load(f)["pid"] == os.getpid()
  assert any(f"pid {pid}" in r.getMessage() and "no longer running"
             in r.getMessage() for r in caplog.records)
  assert os.listdir(tmp_path) == []   # nothing left behind


def test_a_reused_pid_is_stale(tmp_path):
  # Our own pid, but recorded with another start time: the holder died and
  # the pid now names another process.
  _write_lock(str(tmp_path), host=socket.gethostname(), pid=os.getpid(),
              pid_start="1", started="2026-01-01T00:00:00+00:00")
  with wl.held(str(tmp_path)):
    with open(wl.lock_path(str(tmp_path))) as f:
      assert json.load(f)["pid_start"] == wl._pid_start(os.getpid())


def test_another_host_lock_is_never_taken_over(tmp_path):
  _write_lock(str(tmp_path), host="some-other-node", pid=_dead_pid(),
              started="2026-01-01T00:00:00+00:00")
  with pytest.raises(wl.WorkdirLockedError,
                     match=r"host some-other-node.*another host.*delete"):
    wl.acquire(str(tmp_path))


def test_a_lock_without_holder_is_refused_naming_the_file(tmp_path):
  open(wl.lock_path(str(tmp_path)), "w").close()   # crashed mid-write
  with pytest.raises(wl.WorkdirLockedError, match=r"names no holder.*delete"):
    wl.acquire(str(tmp_path))


@pytest.mark.parametrize("process_0_got_it", [1, 0])
def test_processes_other_than_0_hold_nothing_and_follow_process_0(
    tmp_path, monkeypatch, process_0_got_it):
  monkeypatch.setattr(jax, "process_index", lambda: 1)
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  monkeypatch.setattr(multihost_utils, "broadcast_one_to_all",
                      lambda x: process_0_got_it)
  if process_0_got_it:
    with wl.held(str(tmp_path)):
      assert os.listdir(tmp_path) == []   # process 0's lock is the job's
  else:
    with pytest.raises(wl.WorkdirLockedError, match="Process 0"):
      with wl.held(str(tmp_path)):
        pass


_HOLD = """
import sys, time
from ume_jax.infra import workdir_lock
with workdir_lock.held(sys.argv[1]):
  print("held", flush=True)
  time.sleep(120)
"""


def test_a_second_run_is_refused_until_the_first_is_killed(tmp_path):
  workdir = str(tmp_path / "wd")
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  first = subprocess.Popen([sys.executable, "-c", _HOLD, workdir], cwd=REPO,
                           env=env, stdout=subprocess.PIPE, text=True)
  try:
    assert first.stdout.readline().strip() == "held"
    with pytest.raises(wl.WorkdirLockedError, match=rf"pid {first.pid}"):
      with wl.held(workdir):
        pass
  finally:
    first.send_signal(signal.SIGKILL)   # leaves its lock behind
    first.wait()
  assert os.path.exists(wl.lock_path(workdir))
  start = time.time()
  with wl.held(workdir):   # stale: taken over
    pass
  assert time.time() - start < 5
