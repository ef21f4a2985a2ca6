"""The ``ray`` executor: one Ray task per job, on a local Ray instance or a cluster.

Without an address it starts a local instance (no dashboard) that nobody else can use:
token authentication on (``RAY_AUTH_MODE=token``; the token is Ray's, in
``~/.ray/auth_token`` unless ``RAY_AUTH_TOKEN``/``RAY_AUTH_TOKEN_PATH`` say otherwise),
which needs Ray >= 2.52, and its node on the loopback address, so its services listen
on 127.0.0.1 only. With an address (``ray://host:10001``, ``auto``, ``host:6379``) it
joins that cluster, authenticated as that cluster is (see the README). Each job is a task
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
import os
import re

from sepconv.ablation.executor import OnOutcome, Outcome, RunnerSpec, failure, run_in_worker
from sepconv.ablation.jobs import Job, Runner, log

MISSING = "--executor ray needs Ray: pip install 'sepconv[ray]'"
# Token authentication came with Ray 2.52.
MIN_LOCAL_RAY = (2, 52)
LOOPBACK = "127.0.0.1"


class RayUnavailable(RuntimeError):
  """Ray is not installed."""


def _ray():
  try:
    import ray
  except ImportError:
    raise RayUnavailable(MISSING) from None
  return ray


def _secure_local_instance(ray) -> None:
  """Settings for a local instance: token authentication, services on the loopback only.

  Both are read from the environment by the processes the instance starts; this process
  reads them once Ray's config is reloaded.
  """
  version = tuple(int(p) for p in re.findall(r"\d+", ray.__version__)[:2])
  if version < MIN_LOCAL_RAY:
    raise RayUnavailable(f"--executor ray starts its local instance with token authentication, "
                         f"which needs Ray >= 2.52 (installed: {ray.__version__}): "
                         f"pip install -U 'sepconv[ray]'")
  os.environ["RAY_AUTH_MODE"] = "token"
  # Ray resolves a loopback node address to the host's own unless clustering is off, and
  # its services listen on the node address.
  os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
  from ray._private import ray_constants
  ray_constants.ENABLE_RAY_CLUSTER = False
  from ray._raylet import Config
  Config.initialize("")


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
    if local:
      _secure_local_instance(ray)
    ray.init(address=self.address, include_dashboard=False if local else None,
             num_cpus=self.num_cpus if local else None, log_to_driver=not quiet,
             logging_level=logging.WARNING, **({"_node_ip_address": LOOPBACK} if local else {}))

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
