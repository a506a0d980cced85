"""Training logs: JSONL always, TensorBoard event files, a progress line.

Only process 0 writes; other processes get a writer that does nothing, so
call sites need no ``if jax.process_index() == 0``.

A resumed run replays the steps after its checkpoint, so a writer opened
with ``resume_step`` first drops what the logs hold past that step: rows of
``metrics.jsonl`` (rewritten atomically) and TensorBoard events (the kept
ones are merged into one events file, the old files removed), so each step
is logged once. The TensorBoard file is created at the first value written:
a rerun that has nothing to train adds no empty events file.

Files go through ``infra/paths.py``, so ``logdir`` may be on ``gs://``: there
``metrics.jsonl`` is rewritten whole at each write (objects cannot be
appended to), and tensorboardX (which reaches object storage only through
TensorFlow) writes its events into a local staging folder whose files are
copied to ``logdir`` when the writer closes.
"""
import contextlib
import json
import os
import shutil
import struct
import sys
import tempfile
import time

import jax

from ume_jax.infra import paths

EVENTS_GLOB = "events.out.tfevents.*"


class MetricWriter:
  """Appends ``{"step": s, **scalars}`` lines to ``<logdir>/metrics.jsonl``
  and mirrors them to TensorBoard event files via tensorboardX."""

  def __init__(self, logdir: str, *, tensorboard: bool = True,
               resume_step: int | None = None):
    self._active = jax.process_index() == 0
    self._tb = None
    self._tensorboard = tensorboard
    self._logdir = logdir
    if not self._active:
      return
    paths.makedirs(logdir)
    path = paths.join(logdir, "metrics.jsonl")
    if resume_step is not None:
      _trim_jsonl(path, resume_step)
      _trim_tensorboard(logdir, resume_step)
    self._jsonl = paths.Appender(path)
    self._board_block = contextlib.ExitStack()

  def _board(self):
    if self._tb is None and self._tensorboard:
      from tensorboardX import SummaryWriter  # no TensorFlow needed
      local = self._board_block.enter_context(_events_dir(self._logdir))
      self._tb = SummaryWriter(local, filename_suffix=_unique())
      self._board_block.callback(self._tb.close)
    return self._tb

  def write(self, step: int, scalars: dict[str, float]):
    if not self._active:
      return
    record = {"step": int(step), **{k: float(v) for k, v in scalars.items()}}
    self._jsonl.write(json.dumps(record) + "\n")
    self._jsonl.flush()
    board = self._board()
    if board is not None:
      for k, v in scalars.items():
        board.add_scalar(k, float(v), int(step))

  def close(self):
    if self._active:
      self._jsonl.close()
      self._board_block.close()   # closes the board, then uploads its files


@contextlib.contextmanager
def _events_dir(logdir: str):
  """Where tensorboardX writes ``logdir``'s events: ``logdir`` itself on a
  disk; else a local staging folder, copied to ``logdir`` at the end."""
  if not paths.is_remote(logdir):
    yield logdir
    return
  staging = tempfile.mkdtemp(prefix="ume_events_")
  try:
    yield staging
  finally:
    for name in sorted(os.listdir(staging)):
      with open(os.path.join(staging, name), "rb") as f:
        paths.write_bytes(paths.join(logdir, name), f.read())
    shutil.rmtree(staging, ignore_errors=True)


def write_summary(logdir: str, scalars: dict[str, float], step: int = 0
                  ) -> None:
  """Adds ``scalars`` (e.g. evaluation results: ``"eval/<scenario>/<metric>"``)
  at ``step`` to TensorBoard in ``logdir``, in an events file of their own,
  replacing any values of those tags at that step written before (a rerun
  evaluates again). Process 0 only; nothing is created for no scalars."""
  if jax.process_index() != 0 or not scalars:
    return
  paths.makedirs(logdir)
  tags = set(scalars)
  _rewrite_events(logdir, lambda event: not (
      event.step == step and event.HasField("summary")
      and any(v.tag in tags for v in event.summary.value)))
  from tensorboardX import SummaryWriter
  with _events_dir(logdir) as local, SummaryWriter(
      local, filename_suffix=_unique()) as board:
    for k, v in scalars.items():
      board.add_scalar(k, float(v), int(step))


def _unique() -> str:
  """A suffix for a new events file: tensorboardX names files by the second,
  and a second writer in the same second would overwrite the first's."""
  return f".{os.getpid()}.{time.time_ns()}"


def results_line(path: str) -> str:
  """The last line of a run: where its results are."""
  return f"results: {paths.name(path)}"


def _trim_jsonl(path: str, last_step: int) -> None:
  """Drops the rows past ``last_step`` (and a half-written last line)."""
  if not paths.isfile(path):
    return
  kept, changed = [], False
  for line in paths.read_text(path).splitlines(keepends=True):
    try:
      row = json.loads(line)
      keep = line.endswith("\n") and int(row["step"]) <= last_step
    except (ValueError, KeyError, TypeError):
      keep = False
    if keep:
      kept.append(line)
    else:
      changed = True
  if changed:
    paths.write_text(path, "".join(kept))


def _records(path: str):
  """The serialized records of a TFRecord file, up to the first damaged or
  half-written one."""
  data = paths.read_bytes(path)
  at = 0
  while at + 12 <= len(data):
    (length,) = struct.unpack("<Q", data[at:at + 8])
    end = at + 12 + length + 4
    if end > len(data):
      return
    yield data[at + 12:at + 12 + length]
    at = end


def _write_records(path: str, records) -> None:
  from tensorboardX.record_writer import masked_crc32c
  out = []
  for data in records:
    header = struct.pack("<Q", len(data))
    out.append(header + struct.pack("<I", masked_crc32c(header)) + data
               + struct.pack("<I", masked_crc32c(data)))
  paths.write_bytes(path, b"".join(out))   # whole or not at all


def _rewrite_events(logdir: str, keep) -> None:
  """Keeps the events for which ``keep(event)`` holds, merged into one
  file; removes files with no values (empty ones of earlier versions)."""
  from tensorboardX.proto import event_pb2
  files = paths.glob(logdir, EVENTS_GLOB)
  if not files:
    return
  kept, changed = [], False
  for path in files:
    values = 0
    for data in _records(path):
      event = event_pb2.Event.FromString(data)
      if event.HasField("file_version"):
        continue
      if keep(event):
        kept.append(data)
        values += event.HasField("summary")
      else:
        changed = True
    changed |= not values
  if not changed:
    return
  if kept:
    header = event_pb2.Event(wall_time=time.time(),
                             file_version="brain.Event:2").SerializeToString()
    # Named after the first file, so it sorts before files written later.
    merged = files[0].removesuffix(".merged") + ".merged"
    _write_records(merged, [header] + kept)
  else:
    merged = None
  for path in files:
    if path != merged:
      paths.remove(path)


def _trim_tensorboard(logdir: str, last_step: int) -> None:
  _rewrite_events(logdir, lambda event: not (
      event.HasField("summary") and event.step > last_step))


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
