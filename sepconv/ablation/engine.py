"""The job engine: every grid point becomes a JSON record, resumably and shardably.

Records go to ``<out_dir>/records.jsonl`` (format: ``sepconv.report``); each has a
stable ``run_id``, and a job whose ``run_id`` is already recorded is skipped, so an
interrupted sweep started again picks up where it stopped (the records file is the
truth). Training runs keep their checkpoints under ``<work_dir>/runs/<run>`` and resume
mid-run too. ``shard=(i, n)`` runs every n-th grid job; shards' ``records.jsonl`` files
merge by concatenation. The cross-run analyses (a runner's ``analysis_kinds``) need the
runs' outputs; they run on shard 0 once those are all present in its work dir and are
reported as deferred otherwise.

Where the jobs run is the executor's business (``sepconv.ablation.executor``: in this
process, in local worker processes, or on Ray); this driver alone writes the records.
A job that raises gets a record with ``"status": "failed"`` and its ``"error"``, which
does not count as done (``jobs.Status`` lists the statuses). One runner at a time holds a
results folder (``lock``).

An experiment's definition builds its own runner (``experiment.runner(out_dir,
options)``); a new experiment kind is one module holding a definition with that method
and a runner following ``jobs.Runner``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import jax

from sepconv.ablation.executor import Executor, Outcome, RunnerSpec, Sequential
from sepconv.ablation.jobs import RETRIED, STATUSES, Job, Runner, RunOptions, log, logging_enabled
from sepconv.ablation.lock import folder_lock
from sepconv.ablation.progress import SweepProgress
from sepconv.provenance import provenance
from sepconv.records import RECORDS_FILE, append_record, read_records

RECORDS = RECORDS_FILE

EXECUTORS = ("auto", "sequential", "processes", "ray")


def parse_shard(text: str | None) -> tuple[int, int]:
  """'i/n' -> (i, n) with 0 <= i < n."""
  if text is None:
    return 0, 1
  try:
    i, n = (int(p) for p in text.split("/"))
  except ValueError:
    raise ValueError(f"--shard (={text!r}) must be i/n, e.g. 0/4") from None
  if not 0 <= i < n:
    raise ValueError(f"--shard (={text!r}) must satisfy 0 <= i < n")
  return i, n


def recorded_ids(out_dir: Path) -> set[str]:
  """The run_ids with a record in ``out_dir`` (records of failed jobs, ``jobs.RETRIED``, do
  not count)."""
  path = out_dir / RECORDS
  return ({r.get("run_id") for r in read_records(path) if r.get("status") not in RETRIED}
          if path.exists() else set())


def select(jobs: list[Job], shard: tuple[int, int], analysis_kinds: tuple[str, ...]) -> list[Job]:
  """The jobs shard ``(i, n)`` owns: every n-th grid job, and the analyses on shard 0."""
  i, n = shard
  grid = [j for j in jobs if j.kind not in analysis_kinds]
  mine = [j for k, j in enumerate(grid) if k % n == i]
  return mine + ([j for j in jobs if j.kind in analysis_kinds] if i == 0 else [])


def runner_for(experiment, out_dir: str | Path, options: RunOptions = RunOptions()) -> Runner:
  """The runner of ``experiment`` (its definition's ``runner`` method)."""
  return _factory(experiment)(experiment, Path(out_dir), options)


def run(experiment, out_dir: str | Path, *, dataset: str | None = None, data_dir: str | None = None,
        work_dir: str | Path | None = None, shard: tuple[int, int] = (0, 1), progress: bool = True,
        seeds: tuple[int, ...] | None = None, variants: tuple[str, ...] | None = None,
        epochs: int | None = None, replay: str | Path | None = None,
        executor: Executor | str = "sequential", keep_going: bool = False) -> dict:
  """Runs (or resumes) ``experiment``; returns counts of done, skipped and deferred jobs, and
  of jobs that did not finish, per ``jobs.Status`` ('failed', 'diverged').

  Args:
    experiment: a definition (``GranularityAblation``, ``LayerSweep``, ``PaperTables``).
    out_dir: where ``records.jsonl`` lives.
    dataset: which of the experiment's data sets (default: its first).
    data_dir: where the data set's files are (CIFAR).
    work_dir: checkpoints and intermediate files (default ``runs/<out_dir name>``); with
      an executor whose workers run elsewhere, a path every worker can reach.
    shard: (i, n): run every n-th grid job starting at i.
    progress: progress lines and bars on stderr (False: none at all).
    seeds: override the experiment's seeds (e.g. one seed for a quick look).
    variants: run only these grid points (spectrum points or labels).
    epochs: every training run's epochs instead of the presets.
    replay: a results folder whose records' plans ``impl='auto'`` runs again (on the same
      software and CPU, the run then reproduces them bit for bit).
    executor: where the jobs run: an ``Executor`` or the name of one
      (``sepconv.ablation.executor``: 'sequential', 'processes', 'ray').
    keep_going: run past jobs whose training diverged; by default the sweep stops at the
      first one (a learning rate too high for one variant is usually too high for others).
  """
  options = RunOptions(dataset=dataset, data_dir=data_dir,
                       work_dir=Path(work_dir) if work_dir else None, progress=progress,
                       seeds=None if seeds is None else tuple(seeds),
                       variants=None if variants is None else tuple(variants), epochs=epochs,
                       replay=Path(replay) if replay else None)
  return execute(RunnerSpec(_factory(experiment), experiment, Path(out_dir), options), shard,
                 executor, keep_going=keep_going)


def _factory(experiment) -> Callable[..., Runner]:
  make = getattr(type(experiment), "runner", None)
  if not callable(make):
    raise ValueError(f"experiment (={experiment!r}) must be an experiment definition, with a "
                     "runner(out_dir, options) method (GranularityAblation, LayerSweep, "
                     "PaperTables, ...)")
  return make


def execute(spec: RunnerSpec, shard: tuple[int, int] = (0, 1),
            executor: Executor | str = "sequential", *, keep_going: bool = False) -> dict:
  """Runs the jobs of ``spec``'s runner that this shard owns and that have no record yet.

  Grid jobs go to the executor together; a runner's ``exclusive_kinds`` then run alone,
  one at a time; the analyses last, once the grid jobs they read are done. A job that
  raises is recorded as failed (``"status": "failed"``, ``"error"``) and the sweep goes
  on; failed records do not count as done, so a later run retries the job. A job whose
  training diverged is recorded with ``"status": "diverged"`` (done: a later run skips it);
  the sweep then stops unless ``keep_going``.
  """
  executor = make_executor(executor) if isinstance(executor, str) else executor
  work_dir = spec.options.work_dir
  if work_dir is not None and re.match(r"[a-z][a-z0-9+.-]*:/", str(work_dir)):
    raise ValueError(f"--work-dir (={work_dir}) must be a filesystem path (every worker's, "
                     f"where workers run elsewhere); mount a bucket, e.g. with gcsfuse")
  was_logging = logging_enabled(spec.options.progress)
  try:
    return _execute(spec, shard, executor, keep_going)
  finally:
    logging_enabled(was_logging)


class _StopSweep(Exception):
  """A job diverged and the sweep does not keep going."""


def _execute(spec: RunnerSpec, shard: tuple[int, int], executor: Executor, keep_going: bool
             ) -> dict:
  out_dir = spec.out_dir
  runner = spec.build()
  if not isinstance(executor, Sequential):
    spec = _for_workers(spec, runner)
  with folder_lock(out_dir):
    jobs = select(runner.jobs(), shard, runner.analysis_kinds)
    if runner.replaces_records:
      return _replace(runner, out_dir, jobs)
    done_ids = recorded_ids(out_dir)
    todo = [j for j in jobs if j.run_id not in done_ids]
    counts = {"done": 0, "skipped": len(jobs) - len(todo), "deferred": 0,
              **dict.fromkeys(STATUSES, 0)}
    log(f"{len(todo)} of {len(jobs)} jobs to run ({counts['skipped']} already recorded) on "
        f"executor {executor.name} -> {out_dir / RECORDS}")
    analyses, exclusive = runner.analysis_kinds, getattr(runner, "exclusive_kinds", ())
    phases = [([j for j in todo if j.kind not in analyses and j.kind not in exclusive], True),
              ([j for j in todo if j.kind not in analyses and j.kind in exclusive], False),
              ([j for j in todo if j.kind in analyses], True)]
    sweep = SweepProgress(len(todo))
    driver_provenance: list[dict] = []

    def on_outcome(job: Job, outcome: Outcome) -> None:
      prov = outcome.provenance
      if prov is None:  # ran in this process
        if not driver_provenance:
          driver_provenance.append(provenance())
        prov = driver_provenance[0]
      if outcome.failed:
        log(f"{outcome.status} {job.kind} {job.run_id}: {outcome.error}")
        counts[outcome.status] += 1
        append_record(out_dir / RECORDS, _unfinished(runner, job, outcome, prov))
      elif outcome.fields is None:
        counts["deferred"] += 1
      else:
        append_record(out_dir / RECORDS, _full(runner, job, outcome.fields, prov, outcome.seconds))
        counts["done"] += 1
      sweep.job_finished(failed=outcome.failed)
      if outcome.diverged and not keep_going:
        raise _StopSweep

    try:
      for phase, concurrent in phases:
        if phase:
          executor.run(spec, runner, phase, on_outcome, concurrent=concurrent)
    except _StopSweep:
      log("stopped at the first diverged job (--keep-going runs past diverged jobs); "
          "a run started again continues with the jobs not recorded")
    finally:
      close = getattr(executor, "close", None)  # workers kept up between the phases
      if close is not None:
        close()
    return counts


def _for_workers(spec: RunnerSpec, runner: Runner) -> RunnerSpec:
  """``spec`` with absolute paths, for workers that do not share the driver's directory."""
  options = spec.options
  work_dir = getattr(runner, "work_dir", None) or options.work_dir
  options = dataclasses.replace(
      options, work_dir=Path(work_dir).absolute() if work_dir is not None else None,
      data_dir=str(Path(options.data_dir).absolute()) if options.data_dir else None,
      replay=options.replay.absolute() if options.replay else None)
  cache = jax.config.jax_compilation_cache_dir  # the driver's (``sepconv.compile_cache``)
  return dataclasses.replace(spec, out_dir=spec.out_dir.absolute(), options=options,
                             compilation_cache=str(Path(cache).absolute()) if cache else None)


def _full(runner: Runner, job: Job, fields: dict, prov: dict, seconds: float) -> dict:
  return {"experiment": runner.name, "run_id": job.run_id, "kind": job.kind, **fields,
          "provenance": prov, "seconds": seconds, **job.labels()}


def _unfinished(runner: Runner, job: Job, outcome: Outcome, prov: dict) -> dict:
  """The record of a job that did not finish (``executor.failure``)."""
  return {"experiment": runner.name, "run_id": job.run_id, "kind": job.kind,
          "status": outcome.status.value, "error": outcome.error,
          "traceback": outcome.traceback, "provenance": prov, "seconds": outcome.seconds,
          **job.identity()}


def _record(runner: Runner, job: Job, prov: dict) -> dict | None:
  """The full record of one job run in this process (None: deferred)."""
  start = time.perf_counter()
  fields = runner.run_job(job)
  if fields is None:
    return None
  return _full(runner, job, fields, prov, time.perf_counter() - start)


def _replace(runner: Runner, out_dir: Path, jobs: list[Job]) -> dict:
  """Recomputes every record into a new file that replaces the old one only when complete."""
  out_dir.mkdir(parents=True, exist_ok=True)
  prov = provenance()
  fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".records.", suffix=".tmp")
  os.close(fd)
  try:
    for job in jobs:
      append_record(tmp, _record(runner, job, prov))
    os.replace(tmp, out_dir / RECORDS)
  finally:
    if os.path.exists(tmp):
      os.unlink(tmp)
  log(f"{len(jobs)} records computed -> {out_dir / RECORDS}")
  return {"done": len(jobs), "skipped": 0, "deferred": 0, **dict.fromkeys(STATUSES, 0)}


def make_executor(name: str = "sequential", *, workers: int | None = None,
                  address: str | None = None, cpus_per_job: float | None = None) -> Executor:
  """The executor called ``name`` (one of ``EXECUTORS``)."""
  if name not in EXECUTORS:
    raise ValueError(f"--executor (={name!r}) must be one of {', '.join(EXECUTORS)}")
  if name != "processes" and workers is not None:
    raise ValueError(f"--workers (={workers}) only applies to --executor processes")
  if name != "ray" and (address is not None or cpus_per_job is not None):
    raise ValueError("--address and --cpus-per-job only apply to --executor ray")
  if name == "auto":  # one pinned worker per CPU on a CPU host, else this process
    from sepconv.ablation.processes import per_cpu
    return per_cpu() or Sequential()
  if name == "sequential":
    return Sequential()
  if name == "processes":
    from sepconv.ablation.processes import Processes
    return Processes(2 if workers is None else workers)
  from sepconv.ablation.ray_executor import RayExecutor
  return RayExecutor(address=address, cpus_per_job=cpus_per_job or 1.0)


__all__ = ["EXECUTORS", "RECORDS", "execute", "make_executor", "parse_shard", "recorded_ids",
           "run", "runner_for", "select"]
