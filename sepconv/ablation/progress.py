"""Progress of a whole sweep: jobs done of total, elapsed, and an estimate of the time left.

One line per finished job on stderr (``jobs.log``), besides the training runs' per-epoch
bars; ``--quiet`` turns both off. The estimate is the mean time per finished job times
the jobs left (divided among the jobs running at once, which the mean already reflects).
"""

from __future__ import annotations

import time

from sepconv.ablation.jobs import log


def clock(seconds: float) -> str:
  """Seconds as h:mm:ss."""
  s = round(seconds)
  return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class SweepProgress:
  """Counts finished jobs and writes the one-line summary after each."""

  def __init__(self, total: int):
    if total < 0:
      raise ValueError(f"total (={total}) must be >= 0")
    self.total = total
    self.finished = 0
    self.failed = 0
    self.start = time.perf_counter()

  def line(self, now: float | None = None) -> str:
    elapsed = (time.perf_counter() if now is None else now) - self.start
    left = self.total - self.finished
    text = f"{self.finished}/{self.total} jobs done"
    if self.failed:
      text += f" ({self.failed} failed)"
    text += f", {clock(elapsed)} elapsed"
    if self.finished and left:
      text += f", about {clock(elapsed / self.finished * left)} left"
    return text

  def job_finished(self, *, failed: bool = False) -> None:
    self.finished += 1
    self.failed += bool(failed)
    log(self.line())


__all__ = ["SweepProgress", "clock"]
