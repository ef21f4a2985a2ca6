"""Orbax checkpoints of the whole ``TrainState``, for resuming an interrupted run.

Orbax writes each step into a temporary directory and renames it when complete, so a
run killed mid-save leaves the previous checkpoint as the latest. Saves are
asynchronous; ``close`` (or ``wait``) blocks until the last one is on disk.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import orbax.checkpoint as ocp


class Checkpoints:
  """The checkpoints under one directory: save, find the latest, restore."""

  def __init__(self, directory: str | os.PathLike, *, max_to_keep: int = 2):
    self.directory = Path(directory).absolute()
    self._manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state) -> None:
    self._manager.save(step, args=ocp.args.StandardSave(state))

  def restore(self, step: int, like):
    """The state saved at ``step``, with the shapes, dtypes and shardings of ``like``."""
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), like)
    try:
      return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
    except (ValueError, KeyError, FileNotFoundError) as e:
      raise ValueError(f"{self.directory}/{step}: checkpoint does not match this run's model "
                       f"and optimiser ({type(e).__name__}: {e})") from None

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()
