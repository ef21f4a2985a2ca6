"""Raw result records: one JSON object per line, appended, never rewritten.

Tables and plots are rendered from these files alone. A run killed mid-write can
leave a torn final line; readers drop it (and say so) instead of failing, so an
interrupted sweep resumes without losing the records before it.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable
from pathlib import Path


def append_record(path: str | os.PathLike, record: dict) -> None:
  """Appends ``record`` as one JSON line and flushes it to disk."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  line = json.dumps(record, sort_keys=True, allow_nan=True) + "\n"
  with open(path, "a", encoding="utf-8") as f:
    f.write(line)
    f.flush()
    os.fsync(f.fileno())


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
