"""The training progress bar on stderr (``rich.progress``): loss, accuracy and images/s."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn


class Progress:
  """One line per epoch, redrawn in place at most every ``interval`` seconds on a terminal.

  Off a terminal (logs, CI) only the finished line of each epoch is written, so the
  training loop never waits on the device just to draw; with ``enabled=False`` nothing is.
  """

  def __init__(self, epochs: int, steps_per_epoch: int, *, enabled: bool = True,
               stream: TextIO | None = None, interval: float = 0.5):
    self.epochs = epochs
    self.steps = steps_per_epoch
    self.enabled = enabled
    self.console = Console(file=stream or sys.stderr, highlight=False)
    self.live = enabled and self.console.is_terminal
    self.interval = interval
    self._last = 0.0
    self._bar: RichProgress | None = None
    self._task = None

  def due(self) -> bool:
    """Whether a redraw is wanted now (the caller then fetches metrics)."""
    return self.live and time.perf_counter() - self._last >= self.interval

  def draw(self, epoch: int, step: int, loss: float, accuracy: float, images_per_second: float,
           *, final: bool = False, extra: str = "") -> None:
    if not self.enabled:
      return
    self._last = time.perf_counter()
    stats = f"loss {loss:.4f} acc {accuracy:.4f} {images_per_second:,.0f} img/s{extra}"
    title = f"epoch {epoch + 1}/{self.epochs}"
    if not self.live:
      if final:
        self.console.print(f"{title} {step}/{self.steps} {stats}", markup=False)
      return
    if self._bar is None:
      self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(bar_width=20),
                               MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
                               console=self.console, auto_refresh=False)
      self._bar.start()
      self._task = self._bar.add_task(title, total=self.steps, stats="")
    self._bar.update(self._task, description=title, completed=step, stats=stats)
    self._bar.refresh()
    if final:  # the finished epoch's line stays; the next epoch starts a new one
      self._bar.stop()
      self._bar = None

  def close(self) -> None:
    """Ends a bar left mid-epoch (the run stopped early), keeping its last line."""
    if self._bar is not None:
      self._bar.stop()
      self._bar = None
