"""Where the distributed runtime is started: ``jax.distributed.initialize``.

``main.py`` calls ``initialize(...)`` once, before any JAX computation. It
does nothing unless asked, by ``--distributed`` or ``UME_JAX_DISTRIBUTED=1``.
Then the peers come from, in this order:

- explicit values: the flags ``--coordinator_address``, ``--num_processes``,
  ``--process_id``, or else the environment variables ``UME_JAX_COORDINATOR``,
  ``UME_JAX_NUM_PROCESSES``, ``UME_JAX_PROCESS_ID`` (what
  ``launch/local_multiprocess.sh`` sets). With all three given, JAX's cluster
  detection is switched off, so what was given is exactly what is used;
- JAX's own cluster detection for whatever is not given: Cloud TPU VMs
  (metadata server), SLURM (``SLURM_*`` variables of an ``srun`` task) and
  Open MPI. On a TPU pod or under ``srun``, no values at all are needed.

The wait for peers is long by default (``--distributed_timeout_s``, 15 min)
instead of JAX's 5: the hosts of a pod or a SLURM job can start minutes
apart (a slow disk, a package install, a container pull), and a job that
fails at start-up for that costs a whole queue wait.

Cross-process collectives on CPU go through gloo (JAX's default in 0.10, set
explicitly so that a changed default cannot silently break CPU runs); a user
choice in ``JAX_CPU_COLLECTIVES_IMPLEMENTATION`` (e.g. ``mpi``) is kept. On
GPU and TPU this setting only concerns the host CPU backend.

Failures end the job quickly and say why: peers that never show up give a
paragraph naming what to check (XLA itself would abort with a C++ stack
dump), and ``failing_fast`` makes a process that fails later exit at once
instead of waiting minutes for its peers at JAX's shutdown barrier.

The resolution of flags and environment into ``jax.distributed.initialize``
arguments is pure (``requested``, ``resolve``) and tested on its own.
"""
import contextlib
import os
import socket
import sys
import threading
import traceback
from typing import Iterable, Mapping

import jax

ENV_ENABLE = "UME_JAX_DISTRIBUTED"
ENV_COORDINATOR = "UME_JAX_COORDINATOR"
ENV_NUM_PROCESSES = "UME_JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "UME_JAX_PROCESS_ID"
DEFAULT_TIMEOUT_S = 900
_BACKSTOP_S = 30

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


class DistributedError(RuntimeError):
  """The distributed runtime was asked for and could not be started."""


def requested(flag: bool, environ: Mapping[str, str] = os.environ) -> bool:
  """Whether to start the runtime: the flag, or ``UME_JAX_DISTRIBUTED``."""
  value = environ.get(ENV_ENABLE, "").strip().lower()
  if value not in _TRUE + _FALSE:
    raise DistributedError(
        f"{ENV_ENABLE}={environ[ENV_ENABLE]!r} is not understood; use 1 to"
        " start the distributed runtime or 0 (or leave it unset) not to.")
  return bool(flag) or value in _TRUE


def _env_int(environ: Mapping[str, str], name: str) -> int | None:
  raw = environ.get(name, "").strip()
  if not raw:
    return None
  try:
    return int(raw)
  except ValueError:
    raise DistributedError(
        f"{name}={raw!r} is not an integer.") from None


def resolve(*, coordinator_address: str | None = None,
            num_processes: int | None = None, process_id: int | None = None,
            timeout_s: int = DEFAULT_TIMEOUT_S,
            environ: Mapping[str, str] = os.environ) -> dict:
  """The keyword arguments for ``jax.distributed.initialize``.

  Flag values win over the environment; values given neither way are left
  out, for JAX's cluster detection to fill in. Raises DistributedError for
  values that cannot work (a rank outside the job, a zero timeout...).
  """
  coordinator = (coordinator_address
                 or environ.get(ENV_COORDINATOR, "").strip() or None)
  count = (num_processes if num_processes is not None
           else _env_int(environ, ENV_NUM_PROCESSES))
  rank = (process_id if process_id is not None
          else _env_int(environ, ENV_PROCESS_ID))
  _check(coordinator, count, rank, timeout_s)
  kwargs = {"initialization_timeout": int(timeout_s)}
  for key, value in (("coordinator_address", coordinator),
                     ("num_processes", count), ("process_id", rank)):
    if value is not None:
      kwargs[key] = value
  if None not in (coordinator, count, rank):
    # Everything was given: do not let a SLURM or TPU environment that
    # happens to be around pick local devices or override anything.
    kwargs["cluster_detection_method"] = "deactivate"
  return kwargs


def _check(coordinator, count, rank, timeout_s):
  if coordinator is not None and (
      ":" not in coordinator or not coordinator.rsplit(":", 1)[1].isdigit()):
    raise DistributedError(
        f"coordinator address {coordinator!r} is not host:port (process 0's"
        " host name or IP address and a free port, e.g. 10.0.0.1:1234).")
  if count is not None and count < 1:
    raise DistributedError(f"num_processes={count}: must be at least 1.")
  if rank is not None and (rank < 0 or (count is not None and rank >= count)):
    raise DistributedError(
        f"process_id={rank} is not in [0, num_processes={count}): ranks run"
        " from 0 to num_processes - 1, one per process.")
  if timeout_s <= 0:
    raise DistributedError(
        f"--distributed_timeout_s={timeout_s}: must be a positive number of"
        " seconds.")


def explain_failure(kwargs: dict, error: Exception) -> str:
  """One paragraph: what was tried, what went wrong, what to check."""
  detail = (str(error).strip().splitlines() or [type(error).__name__])[0]
  detail = detail[:300]
  if "coordinator_address" not in kwargs and "should be defined" in detail:
    return (
        "--distributed (or UME_JAX_DISTRIBUTED=1) was given, but no cluster"
        " environment was detected (Cloud TPU VM, SLURM srun task, Open MPI)"
        " and no coordinator was given. Outside such clusters pass"
        " --coordinator_address=HOST:PORT --num_processes=N --process_id=I (or"
        f" {ENV_COORDINATOR}, {ENV_NUM_PROCESSES}, {ENV_PROCESS_ID}) to every"
        " process, or use launch/local_multiprocess.sh on one machine.")
  tried = ", ".join(f"{k}={v}" for k, v in sorted(kwargs.items())
                    if k != "cluster_detection_method")
  return (
      f"Could not start the distributed runtime ({tried}): {detail} -- Check"
      " that the coordinator address is process 0's host and port and is"
      " reachable from this host (host name resolution, firewall; an"
      " HTTP(S)_PROXY variable can get in the way); that every process was"
      " started with the same num_processes and its own process_id, and that"
      " all of them started within the timeout (raise"
      " --distributed_timeout_s for slow hosts); and that the port is free on"
      " process 0's host (not used by another job or a run still exiting).")


def initialize(flag: bool = False, *, coordinator_address: str | None = None,
               num_processes: int | None = None,
               process_id: int | None = None,
               timeout_s: int = DEFAULT_TIMEOUT_S) -> bool:
  """Starts the runtime if requested; returns whether it did.

  Must run before anything initialises a JAX backend (``jax.devices()``,
  any computation). Raises DistributedError with a paragraph to show the
  user when the runtime cannot be started.
  """
  if not requested(flag):
    return False
  kwargs = resolve(coordinator_address=coordinator_address,
                   num_processes=num_processes, process_id=process_id,
                   timeout_s=timeout_s)
  if not os.environ.get("JAX_CPU_COLLECTIVES_IMPLEMENTATION"):
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  # When peers never show up, XLA's client does not raise: it aborts the
  # process with a C++ stack dump. So our own watchdog gives up first, with
  # the explanation, and JAX's timeout is a backstop a little later.
  watchdog = threading.Timer(timeout_s, _give_up, (kwargs, timeout_s))
  watchdog.daemon = True
  watchdog.start()
  try:
    jax.distributed.initialize(**dict(
        kwargs, initialization_timeout=timeout_s + _BACKSTOP_S))
  except Exception as e:  # XLA raises its own runtime errors, not ours
    raise DistributedError(explain_failure(kwargs, e)) from e
  finally:
    watchdog.cancel()
  print(describe_process(), flush=True)
  return True


def _give_up(kwargs: dict, timeout_s: int):
  error = TimeoutError(f"not every process joined within {timeout_s} s")
  sys.stderr.write(f"error: {explain_failure(kwargs, error)}\n")
  sys.stderr.flush()
  os._exit(1)  # the main thread is blocked inside XLA; nothing else ends it


def describe_process() -> str:
  """``[process i/n host] ...``: which process this is and what it sees."""
  devices = jax.local_devices()
  kinds = sorted({d.platform for d in devices})
  return (f"[process {jax.process_index()}/{jax.process_count()}"
          f" {socket.gethostname()}] {len(devices)} local / {jax.device_count()}"
          f" global devices ({', '.join(kinds)})")


@contextlib.contextmanager
def failing_fast(graceful_exit_codes: Iterable[int] = ()):
  """In a job of several processes, a process that fails exits at once.

  At a normal exit JAX waits at a shutdown barrier for every process (up to
  5 minutes). The peers of a failed process never arrive there: they wait
  for it inside a collective. So a failure would hang the whole job for
  those minutes. Exiting past the barrier lets the launcher (or the peers'
  missed heartbeats) end the job right away. Exit codes in
  ``graceful_exit_codes`` (a preemption, on which all processes agreed to
  stop at the same step) keep the normal exit, as does a single process.
  """
  try:
    yield
  except SystemExit as e:
    if (not jax.distributed.is_initialized()
        or e.code in (None, 0, *graceful_exit_codes)):
      raise
    if not isinstance(e.code, int):
      print(e.code, file=sys.stderr)
    _exit_now(e.code if isinstance(e.code, int) else 1)
  except BaseException:  # a bug: its traceback, then out
    if not jax.distributed.is_initialized():
      raise
    traceback.print_exc()
    _exit_now(1)


def _exit_now(code: int):
  print(f"[process {jax.process_index()}/{jax.process_count()}"
        f" {socket.gethostname()}] failed; exiting without waiting for the"
        " other processes", file=sys.stderr)
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(code)
