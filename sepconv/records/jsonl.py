"""Raw result records: one JSON object per line, appended, never rewritten.

Tables and plots are rendered from these files alone. Every record is checked against
the schema (``sepconv.records.schema``) when written and when read; a wrong one is a
``ValueError`` naming the file, line and field. Each written line carries
``schema_version``; it belongs to the line, not the record: reading checks it (a line
without one is version 0, the format before the field, read the same) and returns the
record as it was appended, so a record round-trips unchanged. A run killed mid-write can leave a torn
final line; readers drop it (and say so) instead of failing, so an interrupted sweep
resumes without losing the records before it.
"""

from __future__ import annotations

import errno
import json
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

from sepconv.records.schema import SCHEMA_VERSION, record_error


def append_record(path: str | os.PathLike, record: dict) -> None:
  """Appends ``record`` (with ``schema_version``) as one JSON line and flushes it to disk.

  The line goes out in one ``os.write`` on an ``O_APPEND`` descriptor; if the disk takes
  only part of it (full) or the flush fails, the file is cut back to its former length and
  the ``OSError`` raised, so the file never holds a partial line.

  Raises:
    ValueError: ``record`` does not fit the schema (the message names the field).
  """
  path = Path(path)
  if isinstance(record, dict):
    record = {**record, "schema_version": SCHEMA_VERSION}
  error = record_error(record)
  if error:
    raise ValueError(f"record for {path} not written: {error}")
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
  """All records in ``paths`` (a file or several), in file then line order.

  Raises:
    FileNotFoundError: a file is missing.
    ValueError: a line (not the last) is not JSON, or a record does not fit the schema;
      the message names ``file:line`` and the field.
  """
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
        record = json.loads(line)
      except json.JSONDecodeError as e:
        if i == len(lines) - 1:
          warnings.warn(f"{path}: dropped a torn final line (an interrupted write)")
          continue
        raise ValueError(f"{path}:{i + 1} is not a JSON record: {e}") from None
      error = record_error(record)
      if error:
        raise ValueError(f"{path}:{i + 1}: {error}")
      record.pop("schema_version", None)
      records.append(record)
  return records
