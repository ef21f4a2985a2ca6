"""The ``ray`` executor: one Ray task per job, on a local Ray instance or a cluster.

Without an address it starts a local instance (no dashboard); with one
(``ray://host:10001``, ``auto``, ``host:6379``) it joins that cluster. Each job is a task
that asks for one accelerator where the cluster has them (``{'TPU': 1}`` or
``num_gpus=1``: one job per chip or GPU) and ``cpus_per_job`` CPUs otherwise. Ray makes
a task's JAX see only its device (``CUDA_VISIBLE_DEVICES`` on GPUs, ``TPU_VISIBLE_CHIPS``
and the host bounds on a TPU VM; ``executor.prepare_worker_environment`` fills in the
process bounds libtpu needs where an older Ray leaves them out), an accelerator task gets
a fresh worker process (``max_calls=1``), and no task preallocates memory meant for its
neighbours (``XLA_PYTHON_CLIENT_PREALLOCATE=false``).

Faults: a task whose worker process dies (killed, preempted, out of memory) is retried up
to ``max_retries`` times and resumes from its checkpoints; a job that raises comes back
as a failed outcome at once (``retry_exceptions=False``; the engine records it).
"""

from __future__ import annotations

import logging

from sepconv.ablation.executor import OnOutcome, Outcome, RunnerSpec, failure, run_in_worker
from sepconv.ablation.jobs import Job, Runner, log

MISSING = "--executor ray needs Ray: pip install 'sepconv[ray]'"


class RayUnavailable(RuntimeError):
  """Ray is not installed."""


def _ray():
  try:
    import ray
  except ImportError:
    raise RayUnavailable(MISSING) from None
  return ray


class RayExecutor:
  """Jobs as Ray tasks (see the module docstring)."""
  name = "ray"

  def __init__(self, address: str | None = None, *, cpus_per_job: float = 1.0,
               max_retries: int = 2, num_cpus: int | None = None):
    if cpus_per_job <= 0:
      raise ValueError(f"--cpus-per-job (={cpus_per_job}) must be > 0")
    if max_retries < 0:
      raise ValueError(f"max_retries (={max_retries}) must be >= 0")
    self.ray = _ray()
    self.address = address
    self.cpus_per_job = cpus_per_job
    self.max_retries = max_retries
    self.num_cpus = num_cpus

  def connect(self, quiet: bool = False) -> None:
    """Joins the cluster at ``address``, or starts a local instance (once per process)."""
    ray = self.ray
    if ray.is_initialized():
      return
    local = self.address is None
    ray.init(address=self.address, include_dashboard=False if local else None,
             num_cpus=self.num_cpus if local else None, log_to_driver=not quiet,
             logging_level=logging.WARNING)

  def task_options(self) -> dict:
    """Resources, retries and environment of one job's task on this cluster."""
    cluster = self.ray.cluster_resources()
    options = {"num_cpus": self.cpus_per_job, "max_retries": self.max_retries,
               "retry_exceptions": False,
               "runtime_env": {"env_vars": {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}}}
    if cluster.get("TPU"):
      options.update(resources={"TPU": 1}, max_calls=1)
    elif cluster.get("GPU"):
      options.update(num_gpus=1, max_calls=1)
    return options

  def run(self, spec: RunnerSpec, runner: Runner, jobs: list[Job], on_outcome: OnOutcome, *,
          concurrent: bool = True) -> None:
    ray = self.ray
    self.connect(quiet=not spec.options.progress)
    task = ray.remote(**self.task_options())(run_in_worker)
    spec_ref = ray.put(spec)
    if not concurrent:  # alone: the next job starts when the previous one has finished
      for job in jobs:
        on_outcome(job, self._get(task.remote(spec_ref, job)))
      return
    refs = {task.remote(spec_ref, job): job for job in jobs}
    have = ray.cluster_resources()
    log(f"{len(refs)} tasks submitted to Ray (" +
        ", ".join(f"{k} {have[k]:g}" for k in ("CPU", "GPU", "TPU") if k in have) + ")")
    while refs:
      (ready,), _ = ray.wait(list(refs), num_returns=1)
      on_outcome(refs.pop(ready), self._get(ready))

  def _get(self, ref) -> Outcome:
    """The task's outcome; a task Ray gave up on (its worker died too often) is a failure."""
    try:
      return self.ray.get(ref)
    except self.ray.exceptions.RayError as e:
      return failure(e, provenance={})


__all__ = ["MISSING", "RayExecutor", "RayUnavailable"]
