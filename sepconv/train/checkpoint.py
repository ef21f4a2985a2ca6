"""Orbax checkpoints of the whole ``TrainState``, for resuming an interrupted run.

Orbax writes each step into a temporary directory (``<step>.orbax-checkpoint-tmp``) and
renames it when complete, so a run killed mid-save leaves the previous checkpoint as the
latest; the next run's manager removes such leftovers. Saves are asynchronous; ``close``
(or ``wait``) blocks until the last one is on disk. A save that fails for lack of space
or permission raises one ``StorageError`` line; the writer threads' own tracebacks of it
are not logged.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from pathlib import Path

import jax
import orbax.checkpoint as ocp

from sepconv.train.faults import storage_errno, StorageError


# What orbax and tensorstore raise for checkpoints that cannot be read back.
_UNREADABLE = (ValueError, KeyError, FileNotFoundError, OSError)


def _short(error: Exception) -> str:
  """The first line of an error, cut to a readable length (tensorstore's run to kilobytes)."""
  text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
  return text if len(text) <= 240 else text[:240] + "..."


def _quiet_orphaned_reads() -> None:
  """Silences the reads a failed restore leaves behind, once it has been reported.

  When orbax gives up on a damaged checkpoint it closes its event loop while tensorstore
  still completes the other reads; each completion then raises 'Event loop is closed'
  as an unraisable exception, and their failed tasks are logged by asyncio when
  collected: dozens of tracebacks about nothing that can be acted on. Only those are
  silenced; every other exception reaches the previous hook.
  """
  previous = sys.unraisablehook
  if getattr(previous, "_sepconv_quiet", False):
    return

  def hook(unraisable):
    value = unraisable.exc_value
    if isinstance(value, RuntimeError) and str(value) == "Event loop is closed":
      return
    previous(unraisable)
  hook._sepconv_quiet = True
  sys.unraisablehook = hook
  # The same reads' failures also reach asyncio's logger when their tasks are collected.
  logging.getLogger("asyncio").addFilter(
      lambda record: not record.getMessage().startswith("Task exception was never retrieved"))


def _quiet_failed_writes() -> None:
  """Drops orbax's error logs (tracebacks from its writer threads) about a full or
  unwritable disk: ``Checkpoints`` raises the same failure as one line."""
  logger = logging.getLogger("absl")
  if any(getattr(f, "_sepconv_quiet", False) for f in logger.filters):
    return

  def keep(record: logging.LogRecord) -> bool:
    if record.levelno < logging.ERROR or "orbax" not in record.pathname:
      return True
    text = record.getMessage() + (str(record.exc_info[1]) if record.exc_info else "")
    return storage_errno(Exception(text)) is None
  keep._sepconv_quiet = True
  logger.addFilter(keep)


class Checkpoints:
  """The checkpoints under one directory: save, find the latest, restore."""

  def __init__(self, directory: str | os.PathLike, *, max_to_keep: int = 2):
    self.directory = Path(directory).absolute()
    self.last_save = time.monotonic()  # of the last save started, or of this object's creation
    _quiet_failed_writes()
    try:
      self._manager = ocp.CheckpointManager(
          self.directory, options=ocp.CheckpointManagerOptions(
              max_to_keep=max_to_keep, create=True, cleanup_tmp_directories=True))
    except Exception as e:  # noqa: BLE001 -- a storage failure becomes one line, others rise
      self._raise_storage(e, "cannot be created")

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state) -> None:
    """Starts writing ``state`` as ``step`` (a previous save's failure surfaces here)."""
    self.last_save = time.monotonic()
    try:
      self._manager.save(step, args=ocp.args.StandardSave(state))
    except Exception as e:  # noqa: BLE001
      self._raise_storage(e, f"step {step} could not be written")

  def _raise_storage(self, error: Exception, what: str) -> None:
    """Re-raises ``error``, as a one-line ``StorageError`` where the disk is the cause."""
    code = storage_errno(error)
    if code is None:
      raise error
    raise StorageError(code, f"{self.directory}: checkpoint {what} ({os.strerror(code)}); free "
                             f"space or make it writable, then run again to resume") from None

  def restore(self, step: int, like):
    """The state saved at ``step``, with the shapes, dtypes and shardings of ``like``."""
    try:
      return self._read(step, like)
    except _UNREADABLE as e:
      raise ValueError(f"{self.directory}/{step}: checkpoint unreadable or not this run's model "
                       f"and optimiser ({type(e).__name__}: {_short(e)})") from None

  def _read(self, step: int, like):
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), like)
    return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

  def restore_newest_readable(self, like):
    """(step, state) of the newest checkpoint that reads back, or (0, ``like``) if none does.

    A checkpoint that cannot be read (damaged files, a partial copy from a synced drive,
    another model's checkpoint) is reported by path with a warning and set aside as
    ``damaged-<step>`` beside the others (nothing is deleted), so the run resumes from the
    one before it and later saves at that step do not collide.
    """
    _quiet_orphaned_reads()
    for step in sorted(self._manager.all_steps(), reverse=True):
      try:
        return step, self._read(step, like)
      except _UNREADABLE as e:
        aside = self.directory / f"damaged-{step}"
        n = 1
        while aside.exists():
          n += 1
          aside = self.directory / f"damaged-{step}.{n}"
        os.replace(self.directory / str(step), aside)
        warnings.warn(f"{self.directory / str(step)}: damaged checkpoint ({type(e).__name__}: "
                      f"{_short(e)}); set aside as {aside.name}, resuming from the one before",
                      stacklevel=2)
        self._manager.reload()
    return 0, like

  def wait(self) -> None:
    try:
      self._manager.wait_until_finished()
    except Exception as e:  # noqa: BLE001
      self._raise_storage(e, "could not be written")

  def close(self, *, quiet: bool = False) -> None:
    """Waits for the last save and closes; ``quiet``: a failure is not raised (another
    error is already on its way)."""
    try:
      self._manager.close()
    except Exception as e:  # noqa: BLE001
      if not quiet:
        self._raise_storage(e, "could not be written")
