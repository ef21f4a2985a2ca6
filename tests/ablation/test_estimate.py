"""The run-time estimate of a sweep: what it counts, what it skips, when it warns."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from sepconv.ablation import GranularityAblation, LayerSweep, RunOptions, Variant
from sepconv.ablation.estimate import SESSION_HOURS, SweepEstimate, VariantEstimate, estimate
from sepconv.ablation.granularity import BENCH_BUDGET_S, GranularityRunner

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "results" / "granularity_digits" / "records.jsonl"

EXPERIMENT = GranularityAblation(
    name="granularity", variants=(Variant("standard"), Variant("dws")),
    train={"model": "mobilenet_v1_shallow", "width_multiplier": 0.25}, datasets=("digits",),
    seeds=(0, 1), bench_impls=("auto", "xla"), bench_repeats=10)


def _row(**fields) -> VariantEstimate:
  base = dict(label="g=1 +pw", mult_adds=394_880, batch_size=32, step_ms=10.0, eval_ms=2.0,
              compile_s=5.0, runs=3, steps_per_run=528, eval_batches_per_run=166, bench_impls=2,
              bench_compiles=1, bench_repeats=10)
  return VariantEstimate(**{**base, **fields})


def test_a_variants_seconds_are_its_steps_times_the_measured_step():
  row = _row()
  assert row.train_s == pytest.approx(3 * 528 * 10.0 / 1e3)
  assert row.eval_s == pytest.approx(3 * 166 * 2.0 / 1e3)
  # auto's steps are the runs' own; xla compiles once; each impl: 2 warm-ups + 10 timed calls.
  assert row.bench_s == pytest.approx(5.0 + 2 * ((10 + 2) * 10.0 + (10 + 2) * 2.0) / 1e3)
  assert row.total_s == pytest.approx(5.0 + row.train_s + row.eval_s + row.bench_s)
  # 6 x mult-adds x batch per step: forward and both gradients, 2 FLOPs per mult-add.
  assert row.train_tflops == pytest.approx(6 * 394_880 * 32 / 0.010 / 1e12)


def test_timed_calls_of_a_benchmark_stop_at_the_runners_budget():
  slow = _row(step_ms=1000.0, eval_ms=1000.0, bench_impls=1, bench_compiles=0)
  assert slow.bench_s == pytest.approx(2 * (BENCH_BUDGET_S + 2 * 1.0))
  recorded = _row(runs=0, bench_impls=0, bench_compiles=0)
  assert recorded.total_s == 0  # nothing left: no compilation either


def test_a_sweep_longer_than_a_free_session_warns_with_the_sessions_it_needs():
  hours = SESSION_HOURS + 1
  long = SweepEstimate("cifar10", "1 x TPU v5 lite", (_row(step_ms=hours * 3600e3 / (3 * 528),
                                                           eval_ms=0.0, compile_s=0.0,
                                                           bench_impls=0, bench_compiles=0),))
  assert long.total_s == pytest.approx(hours * 3600)
  warning = long.warning()
  assert warning.startswith(f"WARNING: about {hours:.1f} h on 1 x TPU v5 lite")
  assert f"(assumed {SESSION_HOURS:g} h)" in warning
  assert f"about {math.ceil(hours / SESSION_HOURS)} sessions" in warning
  short = SweepEstimate("digits", "1 x cpu", (_row(),))
  assert short.warning() is None
  table = short.to_markdown().splitlines()
  assert table[2].startswith("| g=1 +pw | 394,880 | 10 | ")
  assert table[-1].endswith(f"| **{short.total_s / 60:.1f}** |")
  assert "3 training runs and 1 benchmarks left, on 1 x cpu" in short.summary()


def test_only_training_sweeps_and_positive_sessions_are_estimated():
  sweep = LayerSweep("lowering", (Variant("dws"),), input_size=8, in_channels=8,
                     out_channels=8, kernel_size=3)
  with pytest.raises(ValueError, match=r"experiment \(=LayerSweep\) must be a GranularityAblation"):
    estimate(sweep)
  with pytest.raises(ValueError, match=r"session_hours \(=0\) must be > 0"):
    estimate(EXPERIMENT, session_hours=0)


def _record_like_the_reference(kind: str, run_id: str) -> str:
  """A committed record of ``kind`` standing for job ``run_id`` (already done)."""
  for line in REFERENCE.read_text().splitlines():
    record = json.loads(line)
    if record.get("kind") == kind:
      return json.dumps({**record, "run_id": run_id})
  raise AssertionError(f"no {kind} record in {REFERENCE}")


@pytest.mark.slow
def test_recorded_jobs_are_not_estimated_and_the_rest_are_measured(tmp_path, monkeypatch):
  monkeypatch.setenv("SEPCONV_AUTOTUNE", "0")
  # Recorded: every job of the standard conv, and the first seed of dws.
  jobs = GranularityRunner(EXPERIMENT, tmp_path, RunOptions(epochs=1)).jobs()
  done = [j for j in jobs if j.variant == Variant("standard") and j.kind in ("train", "bench")]
  done += [j for j in jobs if j.variant == Variant("dws") and j.kind == "train" and j.seed == 0]
  (tmp_path / "records.jsonl").write_text(
      "".join(_record_like_the_reference(j.kind, j.run_id) + "\n" for j in done))
  plan = estimate(EXPERIMENT, tmp_path, epochs=1)
  assert [v.label for v in plan.variants] == ["g=1 +pw"]  # standard: nothing left, not measured
  (row,) = plan.variants
  assert row.mult_adds == 394_880  # sepconv.cost, as in results/granularity_digits
  assert row.runs == 1 and row.batch_size == 32
  assert row.steps_per_run == 1437 // 32  # digits: 1,437 training images, the last batch dropped
  assert row.eval_batches_per_run == (1 + 2) * math.ceil(360 / 32) + 2 * math.ceil(1437 / 32)
  assert (row.bench_impls, row.bench_compiles) == (2, 1)
  assert row.step_ms > 0 and row.eval_ms > 0 and row.compile_s > 0
  assert plan.dataset == "digits" and plan.device == "8 x cpu"
  everything = estimate(EXPERIMENT, None, epochs=1, variants=["dws"], seeds=[0, 1, 2])
  assert [(v.label, v.runs) for v in everything.variants] == [("g=1 +pw", 3)]
  # Cross-validated: every fold of every seed is a run; each fold trains on 1,437-1,438 images.
  folded = dataclasses.replace(EXPERIMENT, train={**EXPERIMENT.train, "folds": 5})
  (row,) = estimate(folded, None, epochs=1, variants=["dws"], seeds=[0, 1]).variants
  assert (row.runs, row.steps_per_run) == (10, 1437 // 32)
