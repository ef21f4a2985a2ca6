"""Where a sweep's time went, from its records: training, compiling, autotune measuring,
evaluation and analyses, benchmarking.

Every record carries ``seconds`` (its whole job, measured by the engine); training
records also carry ``metrics.train_seconds`` (optimizer steps only),
``metrics.compile_seconds`` (compiling the steps, any autotune measuring done while
tracing included), ``metrics.autotune_seconds`` (measuring autotune candidates, in
the whole job) and ``metrics.bench_compile_seconds`` (compiling ahead the steps the
variant's benchmark times, counted as benchmarking). A training job's seconds split into
those and the rest of the job: evaluation, features, the linear probe, checkpoints. The
parts add up to the sum of the jobs' seconds; the command's start-up (imports, loading
the data) is not in any record.
"""

from __future__ import annotations

from collections.abc import Sequence

from sepconv.report.writer import Column, Table

SLUG = "time_budget"
ANALYSIS_KINDS = ("decomposition", "cka")


def _number(value) -> float:
  return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def parts(records: Sequence[dict]) -> dict[str, tuple[int, float]]:
  """Part of the sweep -> (jobs, seconds), in a fixed order; parts with no jobs are absent."""
  out: dict[str, list] = {}

  def add(part: str, jobs: int, seconds: float) -> None:
    entry = out.setdefault(part, [0, 0.0])
    entry[0] += jobs
    entry[1] += max(seconds, 0.0)

  for r in records:
    seconds = _number(r.get("seconds"))
    kind = r.get("kind")
    if kind == "train":
      m = r.get("metrics") or {}
      steps, autotune = _number(m.get("train_seconds")), _number(m.get("autotune_seconds"))
      compiling = max(_number(m.get("compile_seconds")) - autotune, 0.0)
      add("training steps", 1, steps)
      add("compiling", 1, compiling)
      add("autotune measuring", 1, autotune)
      ahead = _number(m.get("bench_compile_seconds"))  # the benchmark's steps, compiled early
      add("evaluation, features, probe, checkpoints", 1,
          seconds - steps - compiling - autotune - ahead)
      if ahead:
        add("benchmarking", 0, ahead)
    elif kind in ANALYSIS_KINDS:
      add("cross-run analyses", 1, seconds)
    elif kind == "bench":
      add("benchmarking", 1, seconds)
  order = ("training steps", "compiling", "autotune measuring",
           "evaluation, features, probe, checkpoints", "cross-run analyses", "benchmarking")
  return {p: (out[p][0], out[p][1]) for p in order if p in out}


def time_budget_table(records: Sequence[dict]) -> Table | None:
  """The time budget of ``records`` as a table (None without training or bench records)."""
  budget = parts(records)
  if not budget:
    return None
  total = sum(s for _, s in budget.values())
  jobs = len([r for r in records if r.get("kind") in ("train", "bench", *ANALYSIS_KINDS)])
  rows = [(part, n, seconds, seconds / total if total else None)
          for part, (n, seconds) in budget.items()]
  rows.append(("all jobs", jobs, total, 1.0 if total else None))
  columns = (Column("part", "part"), Column("jobs", "jobs", "count"),
             Column("seconds", "seconds", "count"), Column("share", "share", "percent"))
  return Table(SLUG, "Time budget: seconds per part of the sweep, summed over its jobs",
               columns, tuple(rows))


__all__ = ["SLUG", "parts", "time_budget_table"]
