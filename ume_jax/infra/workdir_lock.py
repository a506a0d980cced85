"""One run per workdir: a lock file naming its holder.

``held(workdir)`` creates ``<workdir>/run.lock`` atomically (``O_EXCL`` on a
disk, a write conditional on its absence on ``gs://``: ``infra/paths.py``) with
the holder as JSON: ``host``, ``pid``, ``started`` (UTC, ISO 8601), the
process's kernel start time ``pid_start`` (Linux; tells a reused pid from
the holder) and ``argv``. It is removed when the block ends, however it ends
(an exception, a preemption); ``kill -9`` or a power cut leave it behind.

A lock already there is:

- *stale*, and taken over with a warning, when it names this host and its
  pid is not running (or runs another program: its start time differs);
- *held* otherwise, and the run is refused, naming the holder. A lock from
  another host cannot be checked from here (its pid means nothing on this
  one), so it is never taken over automatically: the message says which
  file to delete once that process is known to be gone.

Several processes: process 0 alone holds the lock (the workdir is shared
storage, one lock per job); it tells the others whether it got it, so every
process of a refused job stops with the same error instead of waiting for
process 0 inside a collective.
"""
import contextlib
import datetime
import json
import os
import socket
import sys
import time

from absl import logging
import jax
import numpy as np

from ume_jax.infra import paths

LOCK_NAME = "run.lock"


class WorkdirLockedError(RuntimeError):
  """Another run holds the workdir."""


def lock_path(workdir: str) -> str:
  return paths.join(workdir, LOCK_NAME)


def _pid_start(pid: int) -> str | None:
  """The kernel's start time of ``pid`` (clock ticks since boot), or None
  where /proc does not say."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      stat = f.read()
  except OSError:
    return None
  # Field 22; the command name (field 2) may hold spaces: split after ")".
  return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:   # someone else's process: it exists
    return True
  return True


def holder_info() -> dict:
  """This process as a lock holder."""
  return {"host": socket.gethostname(), "pid": os.getpid(),
          "started": datetime.datetime.now(datetime.timezone.utc).isoformat(
              timespec="seconds"),
          "pid_start": _pid_start(os.getpid()), "argv": list(sys.argv)}


def is_stale(holder: dict) -> bool:
  """True when ``holder`` (a lock's JSON) is a dead process of this host."""
  if holder.get("host") != socket.gethostname():
    return False
  try:
    pid = int(holder["pid"])
  except (KeyError, TypeError, ValueError):
    return False
  if not _alive(pid):
    return True
  recorded = holder.get("pid_start")
  return recorded is not None and _pid_start(pid) not in (None, recorded)


def _parse(text: str) -> dict:
  """The lock's holder; {} for a lock being written or unparsable."""
  try:
    value = json.loads(text)
  except ValueError:
    return {}
  return value if isinstance(value, dict) else {}


def _read(path: str) -> tuple[dict, object] | None:
  """The lock's holder and a token of that version; None when absent."""
  found = paths.read_versioned(path)
  return None if found is None else (_parse(found[0]), found[1])


def _describe(holder: dict) -> str:
  return (f"host {holder.get('host', '?')}, pid {holder.get('pid', '?')},"
          f" started {holder.get('started', '?')}")


def acquire(workdir: str) -> dict:
  """Takes the lock of ``workdir`` for this process; returns its content.

  Raises ``WorkdirLockedError`` naming the holder when another live run
  holds it.
  """
  path = lock_path(workdir)
  paths.makedirs(workdir)
  me = holder_info()
  for _ in range(20):
    if paths.create_exclusive(path, json.dumps(me, indent=1)):
      return me
    found = _read(path)
    if found is None:   # released meanwhile
      continue
    holder, version = found
    if not holder:   # being written, or left empty by a crash: look again
      time.sleep(0.1)
      continue
    if not is_stale(holder):
      where = ("another host: its process cannot be checked from here"
               if holder.get("host") not in (None, me["host"])
               else "a running process")
      raise WorkdirLockedError(
          f"The workdir {paths.name(workdir)} is in use by another run"
          f" ({_describe(holder)}; {where}), recorded in {path}. Two runs"
          " on one workdir would overwrite each other's checkpoints and"
          " logs: wait for it to end, or give this run another --workdir."
          f" If that process is gone, delete {path} and rerun.")
    # Stale: remove exactly the version judged stale (another process may
    # have taken it over in between), then retry creating ours.
    if paths.remove_if(path, version):
      logging.warning(
          "Took over the lock %s of a run that is no longer running (%s).",
          path, _describe(holder))
  raise WorkdirLockedError(
      f"Could not take the lock {path} of the workdir: it names no holder"
      " (a run that crashed while writing it) or other runs keep taking it."
      f" If no other run uses this workdir, delete {path} and rerun;"
      " otherwise give this run another --workdir.")


def release(workdir: str, me: dict) -> None:
  """Removes the lock if it is still ``me``'s."""
  path = lock_path(workdir)
  found = _read(path)
  if found is not None and found[0] == me:
    paths.remove_if(path, found[1])


@contextlib.contextmanager
def held(workdir: str):
  """Within this block ``workdir`` is this job's (see the module doc)."""
  error = None
  me = None
  if jax.process_index() == 0:
    try:
      me = acquire(workdir)
    except WorkdirLockedError as e:
      error = e
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    got = int(multihost_utils.broadcast_one_to_all(
        np.int32(error is None and me is not None)))
    if not got and error is None:
      error = WorkdirLockedError(
          f"Process 0 could not take the lock of the workdir {workdir}"
          " (its message names the holder): another run uses it.")
  if error is not None:
    raise error
  try:
    yield
  finally:
    if me is not None:
      release(workdir, me)
