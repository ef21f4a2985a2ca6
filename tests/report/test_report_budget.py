"""The time budget adds up the records' own seconds, part by part."""

from __future__ import annotations

import pytest

from sepconv.report import budget, tables


def _train(seconds, steps, compile_s, autotune):
  return {"kind": "train", "seconds": seconds,
          "metrics": {"train_seconds": steps, "compile_seconds": compile_s,
                      "autotune_seconds": autotune}}


RECORDS = [_train(20.0, 10.0, 6.0, 2.0), _train(12.0, 10.0, 1.0, 0.0),
           {"kind": "bench", "seconds": 30.0}, {"kind": "cka", "seconds": 3.0},
           {"kind": "decomposition", "seconds": 1.0}]


def test_parts_split_training_jobs_and_add_up():
  parts = budget.parts(RECORDS)
  assert parts == {"training steps": (2, 20.0), "compiling": (2, 5.0),
                   "autotune measuring": (2, 2.0),
                   "evaluation, features, probe, checkpoints": (2, 5.0),
                   "cross-run analyses": (2, 4.0), "benchmarking": (1, 30.0)}
  assert sum(s for _, s in parts.values()) == pytest.approx(sum(r["seconds"] for r in RECORDS))


def test_the_benchmarks_steps_compiled_in_a_training_job_count_as_benchmarking():
  ahead = _train(20.0, 10.0, 6.0, 2.0)
  ahead["metrics"]["bench_compile_seconds"] = 1.5
  parts = budget.parts([ahead, {"kind": "bench", "seconds": 3.0}])
  assert parts["benchmarking"] == (1, 4.5)
  assert parts["evaluation, features, probe, checkpoints"] == (1, 2.5)
  assert sum(s for _, s in parts.values()) == pytest.approx(23.0)


def test_table_rows_and_shares():
  table = budget.time_budget_table(RECORDS)
  total = table.rows[-1]
  assert total[:3] == ("all jobs", 5, 66.0)
  assert sum(row[3] for row in table.rows[:-1]) == pytest.approx(1.0)
  assert "| benchmarking" in tables.to_markdown(table)


def test_no_timed_records_no_table():
  assert budget.time_budget_table([{"kind": "paper_cost"}]) is None
