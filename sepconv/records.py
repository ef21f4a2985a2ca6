"""Raw result records: one JSON object per line, appended, never rewritten.

Tables and plots are rendered from these files alone. A run killed mid-write can
leave a torn final line; readers drop it (and say so) instead of failing, so an
interrupted sweep resumes without losing the records before it.
"""

from __future__ import annotations

import errno
import json
import os
import warnings
from collections.abc import Iterable
from pathlib import Path


def append_record(path: str | os.PathLike, record: dict) -> None:
  """Appends ``record`` as one JSON line and flushes it to disk.

  The line goes out in one ``os.write`` on an ``O_APPEND`` descriptor; if the disk takes
  only part of it (full) or the flush fails, the file is cut back to its former length and
  the ``OSError`` raised, so the file never holds a partial line.
  """
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  data = (json.dumps(record, sort_keys=True, allow_nan=True) + "\n").encode("utf-8")
  fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
  try:
    before = os.fstat(fd).st_size
    try:
      written = os.write(fd, data)
      if written != len(data):
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)}: {path} took {written} of "
                                    f"{len(data)} bytes")
      os.fsync(fd)
    except OSError:
      os.ftruncate(fd, before)
      raise
  finally:
    os.close(fd)


def read_records(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[dict]:
  """All records in ``paths`` (a file or several), in file then line order."""
  if isinstance(paths, (str, os.PathLike)):
    paths = [paths]
  records = []
  for path in paths:
    path = Path(path)
    if not path.exists():
      raise FileNotFoundError(f"no records file at {path}")
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
      if not line.strip():
        continue
      try:
        records.append(json.loads(line))
      except json.JSONDecodeError as e:
        if i == len(lines) - 1:
          warnings.warn(f"{path}: dropped a torn final line (an interrupted write)")
          continue
        raise ValueError(f"{path}:{i + 1} is not a JSON record: {e}") from None
  return records
