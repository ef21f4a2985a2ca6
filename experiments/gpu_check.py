"""GPU check: conv-lowering sweeps and MobileNet training steps on one accelerator.

What it runs, in order, each phase stopping at its share of a fixed time budget:
  1. the reference layer (3x3, 56x56x128 -> 128, stride 1, SAME, batch 32) over group
     sizes 1, 2, 4, ..., 128, forward and forward + backward, float32 then bfloat16,
     every impl in ``sepconv.conv.IMPLS`` plus PyTorch (CUDA) when installed;
  2. the spatial + pointwise block (grouped 3x3, then a dense 1x1) over the same group sizes;
  3. a MobileNet v1 (width 1.0, 224x224, batch 64) training step with impls 'auto' and
     'xla', float32 and bfloat16;
and then renders ``lowering.{md,tex,csv}`` and ``train_step.{md,tex,csv}`` beside the
records. Every record carries the device kind, so the tables say what ran where.

How to run (from the repository root; on a machine without the package installed,
PYTHONPATH=. is enough):
  PYTHONPATH=. python3 experiments/gpu_check.py [--out results/lowering/gpu]
  bash experiments/gpu_check.sh [OUT_DIR]
On one H100 it takes about 7 minutes: a 400 s budget plus start-up, the case running at
the deadline, and rendering; the budget cuts the later phases short rather than overrun,
and says on stderr what it skipped. With --quick it runs tiny
shapes (float32 only for the training step, one impl) in under a minute on a CPU, as a
smoke test of the whole path.

Expected: on GPU, native grouped convs are fastest at the dense end and comparatively
slow for narrow groups, most of all in forward + backward; depthwise speed is read as
achieved bandwidth over the published HBM peak, not as FLOP/s.
"""

from __future__ import annotations

import os

# Let PyTorch share the GPU with JAX instead of JAX taking 75% of it up front.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from sepconv.bench.config import LAYERS, LayerConfig  # noqa: E402
from sepconv.bench.layer import (BenchOptions, available_impls,  # noqa: E402
                                 bench_sweep, parse_impls)
from sepconv.report.lowering import render_lowering  # noqa: E402
from sepconv.bench.train_step import (TrainStepConfig, bench_train_step,  # noqa: E402
                                      model_factory)
from sepconv.records import RECORDS_FILE, append_record  # noqa: E402

REFERENCE = LayerConfig()  # 3x3, 56x56x128 -> 128, batch 32.
QUICK = LayerConfig(batch=2, height=8, width=8, in_channels=16, out_channels=16)
TRAIN = TrainStepConfig(batch=64, image_size=224, width_multiplier=1.0, num_classes=1000)
QUICK_TRAIN = TrainStepConfig(batch=2, image_size=16, width_multiplier=0.25, num_classes=10)
# Shares of the time budget at which each phase must have stopped starting new cases.
PHASE_END = {"conv": 0.55, "spatial_pointwise": 0.7, "train_step": 1.0}


def _log(message: str) -> None:
  print(f"[gpu_check] {message}", file=sys.stderr, flush=True)


def run(out_dir: str | os.PathLike, *, quick: bool = False, budget_s: float | None = None,
        impls: str | None = None, git_revision: str | None = None) -> list[Path]:
  """Runs every phase, appending records to ``out_dir/records.jsonl``; returns tables written.

  Args:
    out_dir: folder of ``records.jsonl`` (appended to) and the rendered tables.
    quick: tiny shapes, and only 'xla' and 'auto' unless ``impls`` says otherwise.
    budget_s: time budget (default 400 s, or 120 s with ``quick``).
    impls: comma list of conv impls for the sweeps (default all).
    git_revision: recorded where the checkout has no .git.
  """
  out_dir = Path(out_dir)
  records_path = out_dir / RECORDS_FILE
  budget_s = budget_s or (120.0 if quick else 400.0)
  start = time.monotonic()
  base, train = (QUICK, QUICK_TRAIN) if quick else (REFERENCE, TRAIN)
  options = BenchOptions(repeats=2 if quick else 20, warmup=1 if quick else 3,
                         budget_s=5.0, copy_mib=8 if quick else 1024,
                         matmul_n=128 if quick else None)
  run_id = f"gpu_check-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
  count = 0

  def sink(record: dict) -> None:
    nonlocal count
    if git_revision and not record["provenance"].get("git_revision"):
      record["provenance"]["git_revision"] = git_revision  # A checkout copied without .git.
    append_record(records_path, record)
    count += 1

  group_sizes = (1, 16) if quick else None
  for layer in LAYERS:
    deadline = start + PHASE_END[layer] * budget_s
    for dtype in ("float32", "bfloat16"):
      if time.monotonic() > deadline:
        _log(f"out of time: skipped {layer} {dtype}")
        continue
      _log(f"{layer} sweep, {dtype}, t={time.monotonic() - start:.0f}s")
      if impls is not None:
        layer_impls = parse_impls(impls, layer)
      elif quick:
        layer_impls = ("xla", "auto")
      else:
        layer_impls = available_impls(layer)
      bench_sweep(dataclasses.replace(base, dtype=dtype, layer=layer), group_sizes=group_sizes,
                  impls=layer_impls, options=options, on_record=sink, run_id=run_id, deadline=deadline,
                  progress=True)
  step_impls = ("auto",) if quick else ("auto", "xla")
  for dtype in ("float32",) if quick else ("float32", "bfloat16"):
    config = dataclasses.replace(train, dtype=dtype)
    for impl in step_impls:
      if time.monotonic() > start + budget_s:
        _log(f"out of time: skipped training step {dtype} {impl}")
        continue
      bench_train_step(model_factory(config), config, [impl], warmup=options.warmup,
                       repeats=2 if quick else 10, budget_s=20.0, on_record=sink,
                       run_id=run_id, progress=True)
  _log(f"{count} records appended to {records_path} in {time.monotonic() - start:.0f}s")
  if not records_path.exists():
    raise ValueError(f"no records were written to {records_path}")
  written = render_lowering(records_path, out_dir)
  for path in written:
    _log(f"wrote {path}")
  return written


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default="results/lowering/gpu", help="records and tables folder")
  parser.add_argument("--quick", action="store_true", help="tiny shapes: a CPU smoke test")
  parser.add_argument("--budget-s", type=float, default=None,
                      help="time budget in seconds (default 400, or 120 with --quick)")
  parser.add_argument("--impls", default=None, help="comma list of conv impls (default all)")
  parser.add_argument("--git-revision", default=None,
                      help="recorded when the checkout has no .git (a copied working tree)")
  args = parser.parse_args(argv)
  try:
    run(args.out, quick=args.quick, budget_s=args.budget_s, impls=args.impls,
        git_revision=args.git_revision)
  except (ValueError, FileNotFoundError) as e:
    print(f"gpu_check: error: {e}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
