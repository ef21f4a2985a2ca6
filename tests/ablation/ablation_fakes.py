"""A pure-Python experiment kind for executor tests: jobs that take a moment, fail or die.

Workers (spawned processes, Ray tasks) import this module by name, so the tests put its
folder on the workers' path.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import ClassVar

from sepconv.ablation.granularity import GranularityRunner
from sepconv.ablation.jobs import Job, SeededJob, TrainJob
from sepconv.train import train


@dataclasses.dataclass(frozen=True)
class FakeSweep:
  """``n`` jobs of kind 'work', one 'timed' (exclusive) and one 'summary' (an analysis)."""
  n: int = 4
  seconds: float = 0.2
  fail: tuple[str, ...] = ()  # run_ids that raise
  die_once: tuple[str, ...] = ()  # run_ids whose worker process exits on the first attempt
  only_in_pid: int | None = None  # the runner cannot be built in any other process
  groups: int = 0  # > 0: work job i has affinity i % groups


@dataclasses.dataclass(frozen=True)
class GroupedWorkJob(SeededJob):
  """A work job of affinity ``group`` (jobs of one group share a worker where they can)."""
  group: int = 0
  kind: ClassVar[str] = "work"

  @property
  def affinity(self):
    return self.group


@dataclasses.dataclass(frozen=True)
class WorkJob(SeededJob):
  kind: ClassVar[str] = "work"


@dataclasses.dataclass(frozen=True)
class TimedJob(Job):
  group: int | None = None  # its affinity: timed where that group's jobs ran
  kind: ClassVar[str] = "timed"

  @property
  def affinity(self):
    return self.group


@dataclasses.dataclass(frozen=True)
class SummaryJob(Job):
  kind: ClassVar[str] = "summary"


class FakeRunner:
  name = "fake"
  analysis_kinds = ("summary",)
  exclusive_kinds = ("timed",)
  replaces_records = False

  def __init__(self, experiment: FakeSweep, out_dir: Path, options):
    if experiment.only_in_pid not in (None, os.getpid()):
      raise FileNotFoundError(f"no data set at {options.work_dir} on this worker")
    self.experiment = experiment
    self.work_dir = Path(options.work_dir)

  def jobs(self) -> list[Job]:
    e = self.experiment
    work = ([GroupedWorkJob(f"fake/{i}", seed=i, group=i % e.groups) for i in range(e.n)]
            if e.groups else [WorkJob(f"fake/{i}", seed=i) for i in range(e.n)])
    return (work + [TimedJob("fake/timed", group=1 if e.groups > 1 else None)]
            + [SummaryJob("fake/summary")])

  def run_job(self, job: Job) -> dict | None:
    e = self.experiment
    start = time.time()
    outputs = [self.work_dir / f"{i}.txt" for i in range(e.n)]
    if isinstance(job, SummaryJob):
      if not all(p.exists() for p in outputs):
        return None
      return {"metrics": {"total": sum(int(p.read_text()) for p in outputs)}}
    if job.run_id in e.fail:
      raise ValueError(f"job {job.run_id} (=broken on purpose) must fail")
    marker = self.work_dir / f"died-{job.run_id.replace('/', '-')}"
    if job.run_id in e.die_once and not marker.exists():
      marker.parent.mkdir(parents=True, exist_ok=True)
      marker.touch()
      os._exit(3)  # the worker process dies mid-job
    time.sleep(e.seconds)
    seed = job.seed if isinstance(job, (WorkJob, GroupedWorkJob)) else 0
    if isinstance(job, (WorkJob, GroupedWorkJob)):
      self.work_dir.mkdir(parents=True, exist_ok=True)
      outputs[seed].write_text(str(seed ** 2))
    return {"metrics": {"value": seed ** 2, "start": start, "end": time.time(),
                        "pid": os.getpid(), "cpus": sorted(os.sched_getaffinity(0)),
                        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS")}}


class DyingTrainRunner(GranularityRunner):
  """The 'dws' run's worker process exits after 6 steps (a checkpoint was saved at step 4)."""

  def _train(self, job: TrainJob) -> dict:
    marker = self.work_dir / f"died-{job.variant.slug}-seed{job.seed}"
    if job.variant.conv == "dws" and not marker.exists():
      train(self.config(job.variant, job.seed), self.run_dir(job.variant, job.seed),
            dataset=self.dataset, stop_after_steps=6, progress=False)
      marker.touch()
      os._exit(3)
    return super()._train(job)
