"""A dependency-free progress bar on stderr: loss, accuracy and images/s."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
  """One line per epoch, redrawn in place at most every ``interval`` seconds on a tty.

  Off a tty (logs, CI) only the finished line of each epoch is written, so the
  training loop never waits on the device just to draw.
  """

  def __init__(self, epochs: int, steps_per_epoch: int, *, enabled: bool = True,
               stream: TextIO | None = None, interval: float = 0.5):
    self.epochs = epochs
    self.steps = steps_per_epoch
    self.stream = stream or sys.stderr
    self.enabled = enabled
    self.live = enabled and getattr(self.stream, "isatty", lambda: False)()
    self.interval = interval
    self._last = 0.0

  def due(self) -> bool:
    """Whether a redraw is wanted now (the caller then fetches metrics)."""
    return self.live and time.perf_counter() - self._last >= self.interval

  def draw(self, epoch: int, step: int, loss: float, accuracy: float, images_per_second: float,
           *, final: bool = False, extra: str = "") -> None:
    if not self.enabled:
      return
    self._last = time.perf_counter()
    width = 20
    filled = int(width * step / max(self.steps, 1))
    bar = "#" * filled + "." * (width - filled)
    line = (f"epoch {epoch + 1}/{self.epochs} [{bar}] {step}/{self.steps} "
            f"loss {loss:.4f} acc {accuracy:.4f} {images_per_second:,.0f} img/s{extra}")
    if self.live:
      self.stream.write("\r\033[K" + line + ("\n" if final else ""))
    elif final:
      self.stream.write(line + "\n")
    self.stream.flush()
