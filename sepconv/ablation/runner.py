"""The experiment runner: every grid point becomes JSON records, resumably and shardably.

Records go to ``<out_dir>/records.jsonl`` (format: ``sepconv.report``); each has a
stable ``run_id``, and a job whose ``run_id`` is already recorded is skipped, so an
interrupted sweep started again picks up where it stopped. Training runs keep their
checkpoints under ``<work_dir>/runs/<run>`` and resume mid-run too. ``shard=(i, n)``
runs every n-th job; shards' ``records.jsonl`` files merge by concatenation. The
cross-run analyses (CKA between variants, the projection of the standard model's
kernels) need the runs' checkpoints; they run on shard 0 once those are all present
in its work dir and are reported as deferred otherwise.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sepconv.ablation.experiment import GranularityAblation, LayerSweep, Variant
from sepconv.provenance import provenance
from sepconv.records import append_record, read_records

RECORDS = "records.jsonl"


@dataclasses.dataclass(frozen=True)
class Job:
  """One unit of work and the record it produces."""
  kind: str  # "train", "bench", "decomposition", "cka", "layer"
  run_id: str
  variant: Variant | None = None
  seed: int | None = None
  layer: str | None = None  # for per-layer analyses


def _log(message: str) -> None:
  print(f"[ablate] {message}", file=sys.stderr, flush=True)


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


def _select(jobs: list[Job], shard: tuple[int, int], analysis_kinds: tuple[str, ...]) -> list[Job]:
  i, n = shard
  grid = [j for j in jobs if j.kind not in analysis_kinds]
  mine = [j for k, j in enumerate(grid) if k % n == i]
  return mine + ([j for j in jobs if j.kind in analysis_kinds] if i == 0 else [])


def run(experiment, out_dir: str | Path, *, dataset: str | None = None, data_dir: str | None = None,
        work_dir: str | Path | None = None, shard: tuple[int, int] = (0, 1), progress: bool = True,
        seeds: tuple[int, ...] | None = None) -> dict:
  """Runs (or resumes) ``experiment``; returns counts of done, skipped and deferred jobs.

  Args:
    experiment: a ``GranularityAblation``, a ``LayerSweep``, or an object with
      ``run(out_dir)`` (computed-only experiments such as the paper tables).
    out_dir: where ``records.jsonl`` lives.
    dataset: which of the experiment's data sets (default: its first).
    data_dir: where the data set's files are (CIFAR).
    work_dir: checkpoints and intermediate files (default ``runs/<out_dir name>``).
    shard: (i, n): run every n-th grid job starting at i.
    progress: progress lines and bars on stderr.
    seeds: override the experiment's seeds (e.g. one seed for a quick look).
  """
  out_dir = Path(out_dir)
  if isinstance(experiment, GranularityAblation):
    from sepconv.ablation.granularity import GranularityRunner
    if seeds is not None:
      experiment = dataclasses.replace(experiment, seeds=tuple(seeds))
    runner = GranularityRunner(experiment, out_dir, dataset=dataset, data_dir=data_dir,
                               work_dir=work_dir, progress=progress)
  elif isinstance(experiment, LayerSweep):
    from sepconv.ablation.layer_sweep import LayerSweepRunner
    runner = LayerSweepRunner(experiment, out_dir, progress=progress)
  elif hasattr(experiment, "run"):
    experiment.run(out_dir)
    return {"done": 1, "skipped": 0, "deferred": 0}
  else:
    raise ValueError(f"experiment (={experiment!r}) is not a runnable definition")
  return execute(runner, out_dir, shard)


def execute(runner, out_dir: Path, shard: tuple[int, int]) -> dict:
  """Runs the runner's jobs that this shard owns and that have no record yet."""
  jobs = _select(runner.jobs(), shard, runner.analysis_kinds)
  done_ids = recorded_ids(out_dir)
  todo = [j for j in jobs if j.run_id not in done_ids]
  counts = {"done": 0, "skipped": len(jobs) - len(todo), "deferred": 0}
  _log(f"{len(todo)} of {len(jobs)} jobs to run ({counts['skipped']} already recorded) -> "
       f"{out_dir / RECORDS}")
  prov = provenance()
  for k, job in enumerate(todo, 1):
    start = time.perf_counter()
    _log(f"({k}/{len(todo)}) {job.kind} {job.run_id}")
    record = runner.run_job(job)
    if record is None:
      counts["deferred"] += 1
      continue
    record = {"experiment": runner.name, "run_id": job.run_id, "kind": job.kind,
              **record, "provenance": prov, "seconds": time.perf_counter() - start}
    if job.seed is not None:
      record["seed"] = job.seed
    append_record(out_dir / RECORDS, record)
    counts["done"] += 1
  return counts


def timed(call: Callable[[], object], *, warmup: int, repeats: int) -> float:
  """Median ms of ``repeats`` warm calls of ``call`` (which blocks until ready)."""
  from sepconv.bench.timing import measure
  times = measure(call, warmup=warmup, repeats=repeats, budget_s=20.0)[0]
  return float(np.median(times))
