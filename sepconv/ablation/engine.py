"""The job engine: every grid point becomes a JSON record, resumably and shardably.

Records go to ``<out_dir>/records.jsonl`` (format: ``sepconv.report``); each has a
stable ``run_id``, and a job whose ``run_id`` is already recorded is skipped, so an
interrupted sweep started again picks up where it stopped (the records file is the
truth). Training runs keep their checkpoints under ``<work_dir>/runs/<run>`` and resume
mid-run too. ``shard=(i, n)`` runs every n-th grid job; shards' ``records.jsonl`` files
merge by concatenation. The cross-run analyses (a runner's ``analysis_kinds``) need the
runs' outputs; they run on shard 0 once those are all present in its work dir and are
reported as deferred otherwise.

Which runner runs an experiment is looked up by the experiment's type in ``RUNNERS``;
a new experiment kind is a definition, a runner following ``jobs.Runner``, and one row
there.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sepconv.ablation.experiment import GranularityAblation, LayerSweep, PaperTables
from sepconv.ablation.granularity import GranularityRunner
from sepconv.ablation.jobs import Job, RunOptions, Runner, log
from sepconv.ablation.layer_sweep import LayerSweepRunner
from sepconv.ablation.paper import PaperTablesRunner
from sepconv.provenance import provenance
from sepconv.records import append_record, read_records

RECORDS = "records.jsonl"

# Experiment type -> (experiment, out_dir, options) -> runner.
RUNNERS: dict[type, Callable[..., Runner]] = {
    GranularityAblation: GranularityRunner,
    LayerSweep: LayerSweepRunner,
    PaperTables: PaperTablesRunner,
}


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
  path = out_dir / RECORDS
  return {r.get("run_id") for r in read_records(path)} if path.exists() else set()


def select(jobs: list[Job], shard: tuple[int, int], analysis_kinds: tuple[str, ...]) -> list[Job]:
  """The jobs shard ``(i, n)`` owns: every n-th grid job, and the analyses on shard 0."""
  i, n = shard
  grid = [j for j in jobs if j.kind not in analysis_kinds]
  mine = [j for k, j in enumerate(grid) if k % n == i]
  return mine + ([j for j in jobs if j.kind in analysis_kinds] if i == 0 else [])


def runner_for(experiment, out_dir: str | Path, options: RunOptions = RunOptions()) -> Runner:
  """The runner of ``experiment``'s kind (``RUNNERS``)."""
  make = RUNNERS.get(type(experiment))
  if make is None:
    kinds = ", ".join(t.__name__ for t in RUNNERS)
    raise ValueError(f"experiment (={experiment!r}) must be one of the kinds {kinds}")
  return make(experiment, Path(out_dir), options)


def run(experiment, out_dir: str | Path, *, dataset: str | None = None, data_dir: str | None = None,
        work_dir: str | Path | None = None, shard: tuple[int, int] = (0, 1), progress: bool = True,
        seeds: tuple[int, ...] | None = None, variants: tuple[str, ...] | None = None,
        epochs: int | None = None, replay: str | Path | None = None) -> dict:
  """Runs (or resumes) ``experiment``; returns counts of done, skipped and deferred jobs.

  Args:
    experiment: a definition from ``sepconv.ablation.experiment``.
    out_dir: where ``records.jsonl`` lives.
    dataset: which of the experiment's data sets (default: its first).
    data_dir: where the data set's files are (CIFAR).
    work_dir: checkpoints and intermediate files (default ``runs/<out_dir name>``).
    shard: (i, n): run every n-th grid job starting at i.
    progress: progress lines and bars on stderr.
    seeds: override the experiment's seeds (e.g. one seed for a quick look).
    variants: run only these grid points (spectrum points or labels).
    epochs: every training run's epochs instead of the presets.
    replay: a results folder whose records' plans ``impl='auto'`` runs again (on the same
      software and CPU, the run then reproduces them bit for bit).
  """
  options = RunOptions(dataset=dataset, data_dir=data_dir,
                       work_dir=Path(work_dir) if work_dir else None, progress=progress,
                       seeds=None if seeds is None else tuple(seeds),
                       variants=None if variants is None else tuple(variants), epochs=epochs,
                       replay=Path(replay) if replay else None)
  return execute(runner_for(experiment, out_dir, options), Path(out_dir), shard)


def execute(runner: Runner, out_dir: Path, shard: tuple[int, int]) -> dict:
  """Runs the runner's jobs that this shard owns and that have no record yet."""
  jobs = select(runner.jobs(), shard, runner.analysis_kinds)
  if runner.replaces_records:
    return _replace(runner, out_dir, jobs)
  done_ids = recorded_ids(out_dir)
  todo = [j for j in jobs if j.run_id not in done_ids]
  counts = {"done": 0, "skipped": len(jobs) - len(todo), "deferred": 0}
  log(f"{len(todo)} of {len(jobs)} jobs to run ({counts['skipped']} already recorded) -> "
      f"{out_dir / RECORDS}")
  prov = provenance()
  for k, job in enumerate(todo, 1):
    log(f"({k}/{len(todo)}) {job.kind} {job.run_id}")
    record = _record(runner, job, prov)
    if record is None:
      counts["deferred"] += 1
      continue
    append_record(out_dir / RECORDS, record)
    counts["done"] += 1
  return counts


def _record(runner: Runner, job: Job, prov: dict) -> dict | None:
  """The full record of one job (None: deferred)."""
  start = time.perf_counter()
  fields = runner.run_job(job)
  if fields is None:
    return None
  record = {"experiment": runner.name, "run_id": job.run_id, "kind": job.kind, **fields,
            "provenance": prov, "seconds": time.perf_counter() - start}
  if job.seed is not None:
    record["seed"] = job.seed
  return record


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
  return {"done": len(jobs), "skipped": 0, "deferred": 0}


__all__ = ["RECORDS", "RUNNERS", "execute", "parse_shard", "recorded_ids", "run", "runner_for",
           "select"]
