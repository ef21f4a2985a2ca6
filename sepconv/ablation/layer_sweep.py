"""``LayerSweep``: one layer's cost and measured speed at each spectrum point; definition and runner."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from sepconv import cost, timing
from sepconv.ablation.grid import Variant
from sepconv.ablation.jobs import BenchJob, RunOptions, refuse_training_options
from sepconv.layers import SpectrumConv

# Seconds of timed calls per measurement, past its minimum repeats (``sepconv.timing``); a
# single call slower than that is the whole measurement (XLA's native weight gradient of the
# naive split takes minutes per call on a 2-core CPU).
BUDGET_S = 20.0


@dataclasses.dataclass(frozen=True)
class LayerSweep:
  """One layer at several spectrum points: analytic cost and measured forward/backward speed.

  Attributes:
    name: results go to ``results/<name>`` by default.
    schemes: label -> ``ConvSpec`` factory arguments: a spectrum point string.
    input_size, in_channels, out_channels, kernel_size: the layer.
    batch: batch of the timed calls.
    impls: conv implementations timed (each that supports the layer).
    repeats: timed repeats (median reported).
  """
  name: str
  schemes: tuple[Variant, ...]
  input_size: int
  in_channels: int
  out_channels: int
  kernel_size: int
  batch: int = 32
  impls: tuple[str, ...] = ("auto", "xla")
  repeats: int = 10

  def results_name(self, dataset: str | None = None) -> str:
    """Folder name of the results: the experiment's name (it trains on no data set)."""
    return self.name

  def runner(self, out_dir: Path, options: RunOptions = RunOptions()) -> LayerSweepRunner:
    """How the engine runs this experiment (``jobs.Runner``)."""
    return LayerSweepRunner(self, out_dir, options)


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
