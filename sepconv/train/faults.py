"""What ends a training run early: divergence, a stop signal, a full or unwritable disk.

* ``Diverged``: the training loss (or a parameter) is no longer finite. The loop checks
  where it already waits for the device (a progress redraw, before every checkpoint, at
  each epoch's end), so a healthy run pays one scalar fetch per checkpoint; no
  checkpoint of a diverged state is ever written, so the last one on disk is finite.
* ``StopSignals``: SIGINT (Ctrl-C) and SIGTERM (what Colab, preemptible TPU VMs, Ray and
  Kubernetes send before they stop a process) ask the loop to stop at the next step: it
  checkpoints that step and raises ``Interrupted``, whose exit status is the shell's
  convention (128 + the signal: 130, 143). A second signal stops at once. On a multi-host
  run orbax's preemption sync point (``jax.experimental.multihost_utils``) is the tool
  that makes every host stop at the same step; this handler serves one host.
* ``StorageError``: a checkpoint could not be written (no space left, permissions): one
  line naming the folder and the reason, instead of the writer threads' tracebacks.
"""

from __future__ import annotations

import errno
import signal
import threading

import jax
import jax.numpy as jnp
import numpy as np

from sepconv.train.config import TrainConfig

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Diverged(FloatingPointError):
  """Training produced a non-finite loss or parameter at ``step`` of ``epoch`` (1-based)."""

  def __init__(self, epoch: int, step: int, cause: str, last_checkpoint: int | None = None):
    self.epoch, self.step, self.cause, self.last_checkpoint = epoch, step, cause, last_checkpoint
    kept = ("no checkpoint was written" if not last_checkpoint
            else f"the last finite checkpoint (step {last_checkpoint}) is kept")
    super().__init__(f"training diverged at epoch {epoch}, step {step}: {cause}; {kept}")


class Interrupted(KeyboardInterrupt):
  """The run stopped on ``signum`` after checkpointing ``step`` (None: stopped at once)."""

  def __init__(self, signum: int, step: int | None = None):
    self.signum, self.step = int(signum), step
    where = f" after checkpointing step {step}" if step is not None else ""
    super().__init__(f"stopped by {signal.Signals(signum).name}{where}")

  @property
  def exit_status(self) -> int:
    return 128 + self.signum


class StorageError(OSError):
  """A checkpoint or record could not be written (no space left, not writable)."""


class StopSignals:
  """A context in which SIGINT and SIGTERM request a stop instead of ending the process.

  ``requested`` holds the first signal received (None before); the loop polls it between
  steps. A second signal raises ``Interrupted`` at once. On leaving, the previous handlers
  come back, and a stop requested but not yet acted on is raised then, so a caller (an
  ablation sweep) stops too. Outside the main thread (where Python cannot take signals)
  it does nothing.
  """

  def __init__(self):
    self.requested: int | None = None
    self._previous: dict[int, object] = {}

  def _handle(self, signum, frame):
    del frame
    if self.requested is not None:
      raise Interrupted(signum)
    self.requested = signum

  def __enter__(self) -> StopSignals:
    if threading.current_thread() is threading.main_thread():
      for signum in STOP_SIGNALS:
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, kind, value, tb) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous.clear()
    if kind is None and self.requested is not None:
      raise Interrupted(self.requested)


@jax.jit
def _all_finite(tree) -> jax.Array:
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def params_finite(params) -> bool:
  """Whether every parameter is finite. Parameters in this process's CPU memory are read
  in place by numpy (nothing compiled per model); elsewhere one jitted reduction brings
  one scalar back to the host."""
  leaves = jax.tree.leaves(params)
  if all(_on_this_host(x) for x in leaves):
    return all(bool(np.isfinite(np.asarray(x)).all()) for x in leaves)
  return bool(jax.device_get(_all_finite(params)))


def _on_this_host(x) -> bool:
  if not isinstance(x, jax.Array):
    return True
  return x.is_fully_addressable and all(d.platform == "cpu" for d in x.devices())


class NonFinite(Exception):
  """Raised inside an epoch when the loss or parameters stop being finite at ``step``."""

  def __init__(self, step: int, loss: float, params_ok: bool, state):
    super().__init__(step)
    self.step, self.loss, self.params_ok, self.state = step, loss, params_ok, state


def check_finite(state, step: int, loss: float | None = None) -> None:
  """Raises ``NonFinite`` unless the epoch's mean loss so far and the parameters are finite.

  ``loss`` (already fetched) skips the parameter check; without it the loss sum and one
  all-finite flag of the parameters are fetched (where the loop waits for the device anyway).
  """
  params_ok = True
  if loss is None:
    host = lambda x: float(np.asarray(x.addressable_data(0)))  # noqa: E731 -- replicated scalar
    loss = host(state.loss_sum) / max(host(state.seen), 1.0)
    params_ok = params_finite(state.params)
  if not (np.isfinite(loss) and params_ok):
    raise NonFinite(step, loss, params_ok, state)


def likely_cause(config: TrainConfig, loss: float, params_ok: bool) -> str:
  """A one-clause diagnosis of a divergence, with the knob most likely to fix it."""
  what = (f"the training loss is {loss}" if params_ok or not np.isfinite(loss)
          else f"the parameters hold non-finite values (training loss {loss:.4g})")
  hint = (f"the learning rate (peak lr={config.lr:.3g}, base_lr={config.base_lr:g} per 256 "
          f"images) is likely too high; lower it or lengthen the warm-up")
  if config.dtype == "bfloat16":
    hint += ", or train in float32 (bfloat16 overflows sooner)"
  return f"{what}; {hint}"


_STORAGE_MARKS = (("No space left", errno.ENOSPC), ("RESOURCE_EXHAUSTED", errno.ENOSPC),
                  ("Disk quota", errno.EDQUOT), ("Read-only file system", errno.EROFS),
                  ("Permission denied", errno.EACCES), ("PERMISSION_DENIED", errno.EACCES))


def storage_errno(error: BaseException) -> int | None:
  """The errno of a write that failed for lack of space or permission, else None."""
  if isinstance(error, OSError) and error.errno in {code for _, code in _STORAGE_MARKS}:
    return error.errno
  text = str(error)
  for mark, code in _STORAGE_MARKS:
    if mark in text:
      return code
  return None


__all__ = ["check_finite", "Diverged", "Interrupted", "likely_cause", "NonFinite", "params_finite",
           "StopSignals",
           "StorageError", "storage_errno"]
