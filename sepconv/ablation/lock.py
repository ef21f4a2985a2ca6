"""One runner per results folder: a lock file that names its holder.

Two processes started on the same results folder would both run the jobs neither has
recorded yet. ``folder_lock(out_dir)`` takes an exclusive ``flock`` on
``<out_dir>/.lock`` and writes the holder (host, pid, start time) into it; a second
runner fails at once with one line naming the holder. The kernel releases the lock when
its holder exits, however it exits (a killed driver leaves no stale lock: the next
runner takes it over and says whose it was). On a shared filesystem the lock holds
across hosts where the filesystem supports ``flock`` (NFSv4, Filestore); shards on
different machines write separate results folders anyway.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from sepconv.ablation.jobs import log

LOCK = ".lock"


class FolderLocked(RuntimeError):
  """Another runner holds the results folder."""


def _holder_text(path: Path) -> str:
  try:
    holder = json.loads(path.read_text(encoding="utf-8") or "{}")
  except (OSError, ValueError):
    return "an unknown process"
  return (f"pid {holder.get('pid')} on host {holder.get('host')} "
          f"(since {holder.get('started')})")


@contextlib.contextmanager
def folder_lock(out_dir: str | os.PathLike) -> Iterator[Path]:
  """Holds ``out_dir``'s lock for the duration; FolderLocked if another runner has it."""
  out_dir = Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  path = out_dir / LOCK
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      raise FolderLocked(f"results folder {out_dir} (={path}) is held by another runner, "
                         f"{_holder_text(path)}; wait for it or use another --out") from None
    previous = os.read(fd, 4096).decode("utf-8", "replace").strip()
    if previous:
      log(f"took over {path} from a runner that is gone, {_holder_text(path)}")
    holder = {"host": socket.gethostname(), "pid": os.getpid(),
              "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(holder).encode("utf-8"), 0)
    try:
      yield path
    finally:
      os.ftruncate(fd, 0)  # released cleanly: an empty lock file names nobody
  finally:
    os.close(fd)  # closing releases the flock


__all__ = ["LOCK", "FolderLocked", "folder_lock"]
