"""Running a ``LayerSweep``: one layer's cost and measured speed at each spectrum point."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from sepconv import cost, timing
from sepconv.ablation.experiment import LayerSweep
from sepconv.ablation.jobs import BenchJob, RunOptions, refuse_training_options
from sepconv.layers import SpectrumConv

# Seconds of timed calls per measurement, past its minimum repeats (``sepconv.timing``); a
# single call slower than that is the whole measurement (XLA's native weight gradient of the
# naive split takes minutes per call on a 2-core CPU).
BUDGET_S = 20.0


class LayerSweepRunner:
  """One job per scheme: its analytic cost and forward / forward+backward times per impl."""
  exclusive_kinds = (BenchJob.kind,)  # timings: run alone, after the other jobs
  analysis_kinds = ()
  replaces_records = False

  def __init__(self, experiment: LayerSweep, out_dir: Path, options: RunOptions = RunOptions()):
    refuse_training_options(options, experiment.name)
    self.experiment = experiment
    self.name = experiment.name
    self.progress = options.progress

  def jobs(self) -> list[BenchJob]:
    return [BenchJob(f"{self.name}/{v.conv}", variant=v) for v in self.experiment.schemes]

  def run_job(self, job: BenchJob) -> dict:
    e = self.experiment
    spec = job.variant.point.spec(e.in_channels, e.out_channels, e.kernel_size)
    summary = cost.layer_summary(spec, e.input_size)
    x = jax.random.normal(jax.random.key(0), (e.batch, e.input_size, e.input_size, e.in_channels))
    timings = {}
    for impl in e.impls:
      module = SpectrumConv(spec, impl=impl)
      params = module.init(jax.random.key(1), x[:1])["params"]
      fwd = jax.jit(lambda p, x: module.apply({"params": p}, x))
      fwdbwd = jax.jit(jax.grad(lambda p, x: jnp.sum(module.apply({"params": p}, x) ** 2) / 2,
                                argnums=(0, 1)))
      fwd_times = _times(lambda: fwd(params, x), e.repeats)
      fwdbwd_times = _times(lambda: fwdbwd(params, x), e.repeats)
      fwd_ms, fwdbwd_ms = float(np.median(fwd_times)), float(np.median(fwdbwd_times))
      timings[impl] = {"fwd_ms": fwd_ms, "fwdbwd_ms": fwdbwd_ms,
                       "fwd_repeats": len(fwd_times), "fwdbwd_repeats": len(fwdbwd_times),
                       "fwd_images_per_s": e.batch / fwd_ms * 1e3,
                       "fwdbwd_images_per_s": e.batch / fwdbwd_ms * 1e3}
    return {"config": {**job.variant.fields(), "input_size": e.input_size,
                       "in_channels": e.in_channels, "out_channels": e.out_channels,
                       "kernel_size": e.kernel_size, "batch": e.batch},
            "cost": {"params": summary.params, "mult_adds": summary.mult_adds,
                     "flops": summary.flops, "xla_flops": summary.xla_flops,
                     "bytes": summary.bytes},
            "timings": timings}


def _times(call, repeats: int) -> list[float]:
  """Warm-call times (ms) of ``call`` under the sweep's budget and per-call cut-off."""
  return timing.measure(call, warmup=2, repeats=repeats, budget_s=BUDGET_S,
                        cutoff_ms=BUDGET_S * 1e3)[0]
