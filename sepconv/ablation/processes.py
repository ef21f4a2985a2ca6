"""The ``processes`` executor: jobs on a pool of local worker processes.

Each worker is a fresh (spawned) Python process that rebuilds the runner and runs jobs
with ``executor.run_in_worker``, the function Ray's tasks run too. A worker that dies
(killed, out of memory) breaks the pool: the jobs it was running are started again on a
new pool, up to ``max_retries`` times each, and resume from their checkpoints; past that
they are recorded as failed. On one host with several accelerators prefer
``--executor ray``, which gives each job its own chip.
"""

from __future__ import annotations

import multiprocessing
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

from sepconv.ablation.executor import OnOutcome, RunnerSpec, failure, run_in_worker
from sepconv.ablation.jobs import Job, Runner, log


class Processes:
  """``workers`` local processes, one job each at a time."""
  name = "processes"

  def __init__(self, workers: int = 2, *, max_retries: int = 2):
    if workers < 1:
      raise ValueError(f"--workers (={workers}) must be >= 1")
    if max_retries < 0:
      raise ValueError(f"max_retries (={max_retries}) must be >= 0")
    self.workers = workers
    self.max_retries = max_retries

  def run(self, spec: RunnerSpec, runner: Runner, jobs: list[Job], on_outcome: OnOutcome, *,
          concurrent: bool = True) -> None:
    context = multiprocessing.get_context("spawn")
    deaths: Counter = Counter()
    pending = list(jobs)
    while pending:
      retry: list[Job] = []
      pool = ProcessPoolExecutor(max_workers=self.workers if concurrent else 1,
                                 mp_context=context)
      try:
        if concurrent:
          futures = {pool.submit(run_in_worker, spec, job): job for job in pending}
          for future in as_completed(futures):
            self._settle(futures[future], future, on_outcome, deaths, retry)
        else:  # alone: the next job starts when the previous one has finished
          for k, job in enumerate(pending):
            if not self._settle(job, pool.submit(run_in_worker, spec, job), on_outcome, deaths,
                                retry):
              retry += pending[k + 1:]  # the pool is broken: the rest go to a new one
              break
      except BaseException:  # interrupted: do not wait for the jobs still running
        pool.shutdown(wait=False, cancel_futures=True)
        raise
      pool.shutdown()
      if retry:
        log(f"a worker process died; running {len(retry)} job(s) again on a new pool")
      pending = retry

  def _settle(self, job: Job, future, on_outcome: OnOutcome, deaths: Counter,
              retry: list[Job]) -> bool:
    """Reports ``job``'s outcome, or queues it again if its worker died (then: False)."""
    try:
      outcome = future.result()
    except BrokenProcessPool:
      deaths[job.run_id] += 1
      if deaths[job.run_id] > self.max_retries:
        on_outcome(job, failure(f"worker process died {deaths[job.run_id]} times",
                                provenance={}))
      else:
        retry.append(job)
      return False
    on_outcome(job, outcome)
    return True


__all__ = ["Processes"]
