"""An exclusive, per-process lock on a run workdir (WORKDIR/.lock).

Two trainers in one workdir would overwrite each other's checkpoints and
interleave their TensorBoard events and config_changes.jsonl, so every entry
point that writes into a run workdir (`api.train`, `loop.fit`) holds this lock
for its whole life, and a second process is refused with the holder's pid and
host.

  with hold_workdir(workdir):      # raises WorkdirLockedError when in use
    ...

The lock is `fcntl.flock` on WORKDIR/.lock: the kernel drops it when the
holding process dies, however it dies (kill -9 included), so a stale lock never
blocks a resume. The file's JSON (pid, host, start time, command) is only for
the message. The file is never deleted: unlinking it would let a newcomer lock a
fresh inode while an older process still holds the old one.

Re-entrant within a thread (`train` holds it, then calls `fit`, which holds it
again). Workdirs given as URLs (gs://…) and filesystems without flock are not
locked; a warning says so.
"""

import contextlib
import datetime
import errno
import json
import os
import socket
import sys
import threading

from absl import logging

try:
  import fcntl
except ImportError:  # Windows: no flock.
  fcntl = None

LOCK_FILE = ".lock"


class WorkdirLockedError(RuntimeError):
  """Another process (or another thread of this one) is running in the workdir."""


_guard = threading.Lock()
_held = {}  # realpath → [fd, depth, owning thread ident]


def _describe(holder: dict) -> str:
  if not holder:
    return "a process that has not yet recorded its pid"
  parts = [f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}"]
  if holder.get("started"):
    parts.append(f"started {holder['started']}")
  if holder.get("command"):
    parts.append(f"command: {holder['command']}")
  return ", ".join(parts)


def _read_holder(fd) -> dict:
  try:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 65536).decode("utf-8", "replace")
    holder = json.loads(text) if text.strip() else {}
    return holder if isinstance(holder, dict) else {}
  except (OSError, ValueError):
    return {}


def _acquire(workdir: str):
  """Takes the lock; returns the key to release it with, or None (not lockable)."""
  if "://" in workdir:
    logging.warning("%s is not a local path: it is not locked against a second trainer",
                    workdir)
    return None
  if fcntl is None:
    logging.warning("no fcntl on this platform: %s is not locked against a second trainer",
                    workdir)
    return None
  os.makedirs(workdir, exist_ok=True)
  key = os.path.realpath(workdir)
  with _guard:
    entry = _held.get(key)
    if entry is not None:
      if entry[2] != threading.get_ident():
        raise WorkdirLockedError(
            f"{workdir} is in use by another thread of this process (pid {os.getpid()}); "
            "run one trainer per workdir")
      entry[1] += 1
      return key
    path = os.path.join(key, LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      holder = _read_holder(fd) if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN) else None
      os.close(fd)
      if holder is None:  # e.g. ENOLCK / EOPNOTSUPP on some network filesystems
        logging.warning("cannot lock %s (%s): it is not locked against a second trainer",
                        path, e)
        return None
      raise WorkdirLockedError(
          f"{workdir} is in use by another tfspeech run ({_describe(holder)}); wait for it "
          "to finish or stop it, or use another workdir") from None
    record = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
              "command": " ".join(sys.argv)[:500]}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode("utf-8"), 0)
    _held[key] = [fd, 1, threading.get_ident()]
    return key


def _release(key):
  if key is None:
    return
  with _guard:
    entry = _held[key]
    entry[1] -= 1
    if entry[1]:
      return
    del _held[key]
    fd = entry[0]
    try:
      os.ftruncate(fd, 0)  # still locked here: nobody reads a half-cleared record
    finally:
      os.close(fd)  # releases the flock


@contextlib.contextmanager
def hold_workdir(workdir: str):
  """Holds WORKDIR's exclusive lock for the `with` body (creates WORKDIR).

  Raises:
    WorkdirLockedError: another process holds it; the message names its pid,
      host, start time and command.
  """
  key = _acquire(workdir)
  try:
    yield
  finally:
    _release(key)
