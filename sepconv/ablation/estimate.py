"""How long a grouping ablation will run here, before it starts.

For each variant with jobs still to run, the cost model gives its mult-adds per image
(``sepconv.cost``, through the runner's own accounting) and the run's own training step
(``sepconv.train.timed``: same model, batch, optimiser and convolution plans) is compiled,
warmed up and timed (the median of three calls) on this machine's accelerator, together
with its evaluation step. The estimate is then arithmetic over the grid:

* training: step time x steps per epoch x epochs x runs still to run (seeds, times
  folds where the data set is cross-validated; every fold trains on as many batches);
* evaluation: eval-step time x the batches a run evaluates (the test split after each
  epoch, both splits at the end, both again for the features and the probe);
* compiling: the measured compile time once per variant (a process compiles each
  variant's step once for all its seeds and folds, whose shapes agree; the estimate's own
  compilation is the sweep's first);
* benchmarking: per implementation timed, one compilation (none for ``auto``, whose steps
  the training runs compiled) plus the timed calls
  (``bench_repeats`` or the runner's time budget, whichever ends first), at the
  measured step times (implementations other than ``auto`` may be slower).

The cross-run analyses (CKA, kernel projection) take seconds and are left out. Jobs
already recorded in the results folder are not counted, so on a resumed sweep the
estimate is the time left. ``SESSION_HOURS`` is the assumed length of a free Colab session.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

import jax

from sepconv.ablation.engine import recorded_ids
from sepconv.ablation.granularity import BENCH_BUDGET_S, GranularityAblation, GranularityRunner
from sepconv.ablation.jobs import RunOptions
from sepconv.train.timed import time_steps

# A free Colab runtime is not guaranteed for a fixed time (at most 12 hours, recycled
# sooner when idle or when accelerators are scarce); a few hours of continuous use is what
# free TPU and GPU sessions commonly get. Longer sweeps need Drive (they resume) and
# several sessions.
SESSION_HOURS = 3.0


@dataclasses.dataclass(frozen=True)
class VariantEstimate:
  """One variant's measured steps and the time its pending jobs will take (seconds)."""
  label: str
  mult_adds: int  # per image, forward, paper convention (sepconv.cost)
  batch_size: int
  step_ms: float  # one warm training step at batch_size
  eval_ms: float  # one warm evaluation step at batch_size
  compile_s: float  # the training and evaluation steps, compiled once
  runs: int  # training runs (seeds x folds) still to run
  steps_per_run: int  # steps per epoch x epochs
  eval_batches_per_run: int
  bench_impls: int  # implementations still to benchmark (0: recorded)
  bench_compiles: int  # of which compiled anew (all but auto)
  bench_repeats: int

  @property
  def train_s(self) -> float:
    return self.runs * self.steps_per_run * self.step_ms / 1e3

  @property
  def eval_s(self) -> float:
    return self.runs * self.eval_batches_per_run * self.eval_ms / 1e3

  @property
  def bench_s(self) -> float:
    timed = sum(min(self.bench_repeats * ms / 1e3, BENCH_BUDGET_S) + 2 * ms / 1e3  # 2 warm-ups
                for ms in (self.step_ms, self.eval_ms))
    # ``auto``'s steps are the training runs' own, already compiled in the sweep's process.
    return self.bench_compiles * self.compile_s + self.bench_impls * timed

  @property
  def total_s(self) -> float:
    return (self.compile_s if self.runs else 0.0) + self.train_s + self.eval_s + self.bench_s

  @property
  def train_tflops(self) -> float:
    """Achieved training rate: 3 x forward mult-adds (forward, two gradients) x 2 FLOPs."""
    return 6 * self.mult_adds * self.batch_size / (self.step_ms / 1e3) / 1e12


@dataclasses.dataclass(frozen=True)
class SweepEstimate:
  """The estimate of a sweep's pending jobs, per variant."""
  dataset: str
  device: str
  variants: tuple[VariantEstimate, ...]
  session_hours: float = SESSION_HOURS

  @property
  def total_s(self) -> float:
    return sum(v.total_s for v in self.variants)

  def warning(self) -> str | None:
    """A warning when the sweep outlasts one free session; None when it fits."""
    hours = self.total_s / 3600
    if hours <= self.session_hours:
      return None
    sessions = math.ceil(hours / self.session_hours)
    return (f"WARNING: about {hours:.1f} h on {self.device}, longer than a free Colab session "
            f"(assumed {self.session_hours:g} h): mount Drive so the sweep resumes, and expect "
            f"about {sessions} sessions (or fewer seeds, variants or epochs)")

  def to_markdown(self) -> str:
    """A short table: per variant, the measured step and the minutes each part takes."""
    head = ("| variant | mult-adds/image | step (ms) | train TFLOP/s | runs x steps "
            "| training (min) | eval (min) | bench (min) | total (min) |")
    lines = [head, "|" + "---|" * 9]
    for v in self.variants:
      lines.append(f"| {v.label} | {v.mult_adds:,} | {v.step_ms:.3g} | {v.train_tflops:.2g} "
                   f"| {v.runs} x {v.steps_per_run:,} | {v.train_s / 60:.1f} "
                   f"| {v.eval_s / 60:.1f} | {v.bench_s / 60:.1f} | {v.total_s / 60:.1f} |")
    lines.append(f"| **all** | | | | | {sum(v.train_s for v in self.variants) / 60:.1f} "
                 f"| {sum(v.eval_s for v in self.variants) / 60:.1f} "
                 f"| {sum(v.bench_s for v in self.variants) / 60:.1f} "
                 f"| **{self.total_s / 60:.1f}** |")
    return "\n".join(lines) + "\n"

  def summary(self) -> str:
    """One line: the total, where it was measured, and the session it is compared with."""
    return (f"estimated {self.total_s / 60:.1f} min ({self.total_s / 3600:.2f} h) for the "
            f"{sum(v.runs for v in self.variants)} training runs and "
            f"{sum(v.bench_impls > 0 for v in self.variants)} benchmarks left, on {self.device} "
            f"(one free Colab session assumed {self.session_hours:g} h)")


def estimate(experiment: GranularityAblation, out_dir: str | Path | None = None, *,
             dataset: str | None = None, data_dir: str | None = None,
             seeds: Sequence[int] | None = None, variants: Sequence[str] | None = None,
             epochs: int | None = None, session_hours: float = SESSION_HOURS) -> SweepEstimate:
  """Estimates the run time of ``experiment``'s pending jobs on this machine.

  Args:
    experiment: the ablation (a ``GranularityAblation``).
    out_dir: its results folder; jobs recorded there are not counted (None: all jobs).
    dataset, data_dir, seeds, variants, epochs: as ``sepconv.ablation.run``; the same
      values give the same jobs.
    session_hours: the session length the warning compares with.

  Returns:
    A ``SweepEstimate``: per variant with pending jobs, the cost model's mult-adds,
    one measured training and evaluation step, and the seconds each part will take.
  """
  if not isinstance(experiment, GranularityAblation):
    raise ValueError(f"experiment (={type(experiment).__name__}) must be a GranularityAblation: "
                     "only training sweeps are estimated")
  if not session_hours > 0:
    raise ValueError(f"session_hours (={session_hours}) must be > 0")
  out_dir = Path(out_dir) if out_dir is not None else None
  options = RunOptions(dataset=dataset, data_dir=data_dir, progress=False,
                       seeds=None if seeds is None else tuple(seeds),
                       variants=None if variants is None else tuple(variants), epochs=epochs)
  runner = GranularityRunner(experiment, out_dir or Path("."), options)
  done = recorded_ids(out_dir) if out_dir is not None else set()
  pending = [j for j in runner.jobs() if j.run_id not in done]
  # Fold 0 of the first seed: every fold's parts have the same batches (to one image).
  data, impls = runner.data(runner.experiment.seeds[0]), runner.experiment.bench_impls
  rows = []
  for variant in runner.experiment.variants:
    runs = sum(j.kind == "train" and j.variant == variant for j in pending)
    bench = any(j.kind == "bench" and j.variant == variant for j in pending)
    if not runs and not bench:
      continue
    config = runner.config(variant, runner.experiment.seeds[0])
    step, infer = time_steps(config, data, warmup=1, repeats=3)  # compiled, warm: median of 3
    batch = config.batch_size
    steps_per_epoch = data.num_train // batch
    test_batches, train_batches = (math.ceil(len(data.x_test) / batch),
                                   math.ceil(len(data.x_train) / batch))
    rows.append(VariantEstimate(
        label=variant.label, mult_adds=runner._cost(config)["mult_adds"], batch_size=batch,
        step_ms=step.median_ms, eval_ms=infer.median_ms, compile_s=step.compile_ms / 1e3,
        runs=runs, steps_per_run=steps_per_epoch * config.epochs,
        eval_batches_per_run=(config.epochs + 2) * test_batches + 2 * train_batches,
        bench_impls=len(impls) if bench else 0,
        bench_compiles=sum(i != "auto" for i in impls) if bench else 0,
        bench_repeats=runner.experiment.bench_repeats))
  device = jax.devices()[0]
  name = f"{len(jax.devices())} x {device.device_kind}"
  if device.platform not in device.device_kind.lower():
    name += f" ({device.platform})"
  return SweepEstimate(dataset=runner.dataset_name, device=name,
                       variants=tuple(rows), session_hours=session_hours)
