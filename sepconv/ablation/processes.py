"""The ``processes`` executor: jobs on local worker processes, optionally one per CPU.

Each worker is a fresh (spawned) Python process that rebuilds the runner and runs jobs
with ``executor.run_in_worker``, the function Ray's tasks run too; it keeps the runner,
its data and its compiled steps between jobs. A free worker takes the next job of the
same ``Job.affinity`` as its last one (a variant's folds and seeds share one
compilation), else one whose affinity no other worker holds, else the next in order.

``pin=True`` gives each worker its own share of this process's CPUs (an affinity mask
set before JAX starts there): XLA, the C++ kernels' pool and BLAS then use that many
threads. On a CPU host, small models train faster as one single-threaded worker per core
than as one process spreading every small op over all cores (``per_cpu``, the command
line's default executor there).

A worker that dies (killed, out of memory) is replaced: the job it was running is started
again on a new worker, up to ``max_retries`` times, and resumes from its checkpoints; past
that it is recorded as failed. Jobs that must run alone (``concurrent=False``) run one at a
time, each on the worker that ran a job of its affinity last (a variant's benchmark where
its steps were compiled, on that worker's CPUs, as its training ran), the other workers idle.
The workers stay up between calls, so the timings and analyses after the grid reuse their
runtimes, data and compiled steps; ``close`` ends them. On one host with several
accelerators prefer ``--executor ray``, which gives each job its own chip.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from sepconv.ablation.executor import OnOutcome, RunnerSpec, failure, run_in_worker
from sepconv.ablation.jobs import Job, Runner, log
from sepconv.provenance import usable_cpus


# Thread-pool sizes of the numerical libraries a worker loads (BLAS under numpy, OpenMP).
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _pin(cpus: tuple[int, ...]) -> None:
  """A worker's initialiser: run on ``cpus`` only (before JAX sizes its thread pools)."""
  os.sched_setaffinity(0, cpus)


@contextlib.contextmanager
def _thread_pools(cpus: tuple[int, ...] | None) -> Iterator[None]:
  """Within this block, processes started get thread pools of ``len(cpus)`` threads.

  A spawned worker imports numpy before its initialiser runs, and BLAS sizes its pool at
  import from the CPUs it sees then: more threads than the worker's CPUs would spin
  against each other. The variables the user set are left alone.
  """
  if cpus is None:
    yield
    return
  saved = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
  for name, value in saved.items():
    if value is None:
      os.environ[name] = str(len(cpus))
  try:
    yield
  finally:
    for name, value in saved.items():
      if value is None:
        os.environ.pop(name, None)


def cpu_shares(workers: int) -> list[tuple[int, ...] | None]:
  """This process's CPUs split into ``workers`` contiguous shares (None: no pinning here)."""
  if not hasattr(os, "sched_getaffinity"):
    return [None] * workers
  cpus = sorted(os.sched_getaffinity(0))
  if len(cpus) < workers:
    return [None] * workers
  bounds = [len(cpus) * k // workers for k in range(workers + 1)]
  return [tuple(cpus[bounds[k]:bounds[k + 1]]) for k in range(workers)]


_STARTS = itertools.count()  # orders the jobs started by this process's workers


class _Worker:
  """One worker process (a single-process pool, made on first use), its CPUs and the job
  it runs."""

  def __init__(self, cpus: tuple[int, ...] | None):
    self.cpus = cpus
    self.pool: ProcessPoolExecutor | None = None
    self.job: Job | None = None
    self.future: Future | None = None
    self.affinity = None
    self.ran: dict[Any, int] = {}  # affinity -> when this worker last started one of its jobs

  def start(self, spec: RunnerSpec, job: Job) -> None:
    if self.pool is None:
      pin = {"initializer": _pin, "initargs": (self.cpus,)} if self.cpus else {}
      self.pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context(
          "spawn"), **pin)
    self.job, self.affinity = job, job.affinity
    self.ran[job.affinity] = next(_STARTS)
    with _thread_pools(self.cpus):  # the pool starts its process on the first submit
      self.future = self.pool.submit(run_in_worker, spec, job)

  def discard(self) -> None:
    """Drops a broken worker; the next ``start`` makes a new one."""
    self.close(wait=False)
    self.affinity, self.ran = None, {}

  def close(self, wait: bool = True) -> None:
    if self.pool is not None:
      self.pool.shutdown(wait=wait, cancel_futures=not wait)
    self.pool = None


def _next_job(pending: list[Job], worker: _Worker, others: list[_Worker]) -> Job:
  """The pending job ``worker`` runs next (see the module docstring); removed from ``pending``."""
  held = {w.affinity for w in others if w.future is not None and w.affinity is not None}
  for wanted in (lambda j: j.affinity is not None and j.affinity == worker.affinity,
                 lambda j: j.affinity is None or j.affinity not in held,
                 lambda j: True):
    for k, job in enumerate(pending):
      if wanted(job):
        return pending.pop(k)
  raise IndexError("no pending job")


MAX_PER_CPU_WORKERS = 8  # each holds a JAX runtime, its data and compiled steps


def per_cpu() -> Processes | None:
  """Pinned workers, one per CPU of this process (at most ``MAX_PER_CPU_WORKERS``, sharing
  the CPUs), where JAX's default backend is the CPU and there are two CPUs or more; None
  elsewhere (one accelerator: run in this process)."""
  import jax
  cpus = usable_cpus()
  if jax.default_backend() != "cpu" or cpus < 2 or not hasattr(os, "sched_setaffinity"):
    return None
  return Processes(min(cpus, MAX_PER_CPU_WORKERS), pin=True)


class Processes:
  """``workers`` local processes, one job each at a time (``pin``: each on its own CPUs)."""
  name = "processes"

  def __init__(self, workers: int = 2, *, max_retries: int = 2, pin: bool = False):
    if workers < 1:
      raise ValueError(f"--workers (={workers}) must be >= 1")
    if max_retries < 0:
      raise ValueError(f"max_retries (={max_retries}) must be >= 0")
    self.workers = workers
    self.max_retries = max_retries
    self.pin = pin
    self._workers: list[_Worker] | None = None

  def run(self, spec: RunnerSpec, runner: Runner, jobs: list[Job], on_outcome: OnOutcome, *,
          concurrent: bool = True) -> None:
    """Runs ``jobs``; ``concurrent=False``: one at a time, each on the worker holding its
    affinity (the others idle), so timings see the CPUs a training run saw, without
    another job beside them. The workers stay up for the next call (``close`` ends them)."""
    workers = self._start_workers()
    pending, deaths = list(jobs), Counter()
    try:
      while pending or any(w.future is not None for w in workers):
        if concurrent:
          for worker in workers:
            if worker.future is None and pending:
              worker.start(spec, _next_job(pending, worker, workers))
        elif pending and all(w.future is None for w in workers):
          job = pending.pop(0)
          _holder(job, workers).start(spec, job)
        busy = {w.future: w for w in workers if w.future is not None}
        done, _ = wait(busy, return_when=FIRST_COMPLETED)
        for future in done:
          worker = busy[future]
          job, worker.future = worker.job, None
          try:
            outcome = future.result()
          except BrokenProcessPool:
            worker.discard()
            deaths[job.run_id] += 1
            if deaths[job.run_id] > self.max_retries:
              on_outcome(job, failure(f"worker process died {deaths[job.run_id]} times",
                                      provenance={}))
            else:
              log(f"a worker process died; running {job.run_id} again on a new one")
              pending.insert(0, job)
            continue
          on_outcome(job, outcome)
    except BaseException:  # interrupted: do not wait for the jobs still running
      self.close(wait=False)
      raise

  def _start_workers(self) -> list[_Worker]:
    """This executor's workers (their processes start with their first job)."""
    if self._workers is None:
      shares = cpu_shares(self.workers) if self.pin else [None] * self.workers
      self._workers = [_Worker(cpus) for cpus in shares]
    return self._workers

  def close(self, wait: bool = True) -> None:
    """Ends the worker processes (the next ``run`` starts new ones)."""
    for worker in self._workers or ():
      worker.close(wait=wait)
    self._workers = None


def _holder(job: Job, workers: list[_Worker]) -> _Worker:
  """The worker that runs ``job`` alone: the one that started a job of its affinity last
  (its compiled steps are there), else the first one already running a process."""
  ran = [w for w in workers if w.pool is not None and job.affinity is not None
         and job.affinity in w.ran]
  if ran:
    return max(ran, key=lambda w: w.ran[job.affinity])
  return next((w for w in workers if w.pool is not None), workers[0])


__all__ = ["MAX_PER_CPU_WORKERS", "Processes", "cpu_shares", "per_cpu"]
