"""Executors: how the engine's jobs run (one at a time in this process, or on workers).

The engine (``sepconv.ablation.engine``) hands an executor a list of jobs and a callback;
the executor runs each job somewhere and calls the callback, in the driver, with the
job's ``Outcome``. The driver alone writes records, so they are never torn or
interleaved, whichever executor ran the jobs.

* ``Sequential``: every job in this process, one after another (the default; no Ray).
* ``Processes``: a pool of local worker processes (``sepconv.ablation.processes``).
* ``RayExecutor``: one Ray task per job, on a local Ray instance or a cluster
  (``sepconv.ablation.ray_executor``).

``engine.make_executor`` builds one by name.

A worker rebuilds the runner from a ``RunnerSpec`` (a picklable (factory, experiment,
out_dir, options)) and runs ``run_in_worker(spec, job)``, the same function in a process
pool and in a Ray task; a job that does not finish becomes an ``Outcome`` through
``failure`` alone, whichever executor ran it. ``run(..., concurrent=False)`` runs jobs
alone, one at a time (the engine does so for a runner's ``exclusive_kinds``, jobs that
time things).
"""

from __future__ import annotations

import dataclasses
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from sepconv import hostmem
from sepconv.ablation.jobs import Job, Runner, RunOptions, Status, log, logging_enabled

# The last lines of a failed job's traceback kept in its record.
TRACEBACK_CHARS = 4000


@dataclasses.dataclass(frozen=True)
class RunnerSpec:
  """What a worker needs to rebuild the driver's runner: ``make(experiment, out_dir, options)``."""
  make: Callable[..., Runner]
  experiment: Any
  out_dir: Path
  options: RunOptions
  compilation_cache: str | None = None  # the driver's JAX compilation cache, for workers

  def build(self) -> Runner:
    return self.make(self.experiment, self.out_dir, self.options)


@dataclasses.dataclass(frozen=True)
class Outcome:
  """What running one job gave: its record fields (None: deferred), or why it did not finish."""
  fields: dict | None
  seconds: float
  error: str | None = None
  traceback: str | None = None
  provenance: dict | None = None  # the worker's, where the job ran outside the driver
  status: Status | None = None  # set when the job did not finish (``failure``)

  @property
  def diverged(self) -> bool:
    return self.status is Status.DIVERGED

  @property
  def failed(self) -> bool:
    return self.status is not None


def failure(error: BaseException | str, seconds: float = 0.0, *,
            provenance: dict | None = None) -> Outcome:
  """The outcome of a job that did not finish, the one path every executor takes.

  ``error`` is the exception the job (or its worker) raised, whose first line and
  traceback go into the record, or a message where there is no exception (a worker
  process that died).
  """
  if isinstance(error, BaseException):
    text = f"{type(error).__name__}: {error}".strip().splitlines()[0]
    trace = "".join(traceback.format_exception(error))[-TRACEBACK_CHARS:]
  else:
    text, trace = error, None
  # A training run's divergence (``sepconv.train.faults.Diverged``) is a result, not a fault.
  status = Status.DIVERGED if isinstance(error, FloatingPointError) else Status.FAILED
  return Outcome(None, seconds, error=text[:500], traceback=trace, provenance=provenance,
                 status=status)


OnOutcome = Callable[[Job, Outcome], None]


class Executor(Protocol):
  """Runs jobs and reports each one's outcome to the driver (see the module docstring)."""
  name: str

  def run(self, spec: RunnerSpec, runner: Runner, jobs: list[Job], on_outcome: OnOutcome, *,
          concurrent: bool = True) -> None: ...

  # Optional: close() -> None, called once the sweep's phases are done (workers kept up
  # between ``run`` calls end there).


def attempt(runner: Runner, job: Job) -> Outcome:
  """Runs ``job``; an exception it raises becomes a failed outcome naming the error."""
  log(f"running {job.kind} {job.run_id}")
  start = time.perf_counter()
  try:
    fields = runner.run_job(job)
  except Exception as e:  # noqa: BLE001 -- a failed job is recorded, and the sweep goes on
    return failure(e, time.perf_counter() - start)
  return Outcome(fields, time.perf_counter() - start)


class Sequential:
  """Every job in this process, one at a time, in order."""
  name = "sequential"

  def run(self, spec: RunnerSpec, runner: Runner, jobs: list[Job], on_outcome: OnOutcome, *,
          concurrent: bool = True) -> None:
    for job in jobs:
      on_outcome(job, attempt(runner, job))


# A worker process keeps the runner it built (its data set stays loaded between jobs).
_WORKER: dict[str, Any] = {}


def prepare_worker_environment() -> None:
  """Settings a worker needs before JAX starts: it shares the host with other workers.

  Keep freed host memory (``sepconv.hostmem``); never preallocate accelerator memory
  meant for neighbours; on a TPU VM, libtpu sees only the chips in ``TPU_VISIBLE_CHIPS``
  (set by Ray for a task that asks for TPU) once the process bounds say the process is
  one of several on the host.
  """
  os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
  hostmem.keep_if_wanted()
  chips = os.environ.get("TPU_VISIBLE_CHIPS")
  if chips and len(chips.split(",")) == 1:
    os.environ.setdefault("TPU_CHIPS_PER_PROCESS_BOUNDS", "1,1,1")
    os.environ.setdefault("TPU_PROCESS_BOUNDS", "1,1,1")


def _use_compilation_cache(path: str) -> None:
  import jax
  if jax.config.jax_compilation_cache_dir:
    return
  try:
    Path(path).mkdir(parents=True, exist_ok=True)
  except OSError:
    return  # not writable from this worker: compile, as without the cache
  jax.config.update("jax_compilation_cache_dir", path)


def run_in_worker(spec: RunnerSpec, job: Job) -> Outcome:
  """One job in a worker process: the runner is rebuilt from ``spec`` (once per process)."""
  prepare_worker_environment()
  logging_enabled(spec.options.progress)
  if spec.compilation_cache:
    _use_compilation_cache(spec.compilation_cache)
  if _WORKER.get("spec") != spec:
    _WORKER.clear()
    try:
      runner = spec.build()
    except Exception as e:  # noqa: BLE001 -- e.g. the data set is missing on this worker
      return failure(e, provenance={})
    _WORKER.update(spec=spec, runner=runner)
  if "provenance" not in _WORKER:
    from sepconv.provenance import provenance
    _WORKER["provenance"] = provenance()
  outcome = attempt(_WORKER["runner"], job)
  return dataclasses.replace(outcome, provenance=_WORKER["provenance"])


__all__ = ["Executor", "Outcome", "RunnerSpec", "Sequential", "attempt", "failure",
           "prepare_worker_environment", "run_in_worker"]
