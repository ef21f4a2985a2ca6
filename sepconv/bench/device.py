"""``sepconv bench device``: one lent TPU or GPU measured in at most 8 minutes.

What it runs, each phase stopping at its share of the time budget (420 s by default, so
the case running at the deadline and the tables still end within 8 minutes):

1. the reference layer (3x3, 56x56x128 -> 128, stride 1, SAME, batch 32) over group
   sizes 1..128 (visited 1, 128, 4, 32, 2, 64, 8, 16, so a cut still spans the
   spectrum), forward and forward + backward, float32 then bfloat16: native ('xla'),
   'auto', and every implementation of the table that claims this platform;
2. the MobileNet v1 training step (forward, backward, SGD with momentum) at 224x224
   (width 1.0, batch 64, 1000 classes) and at the Colab notebook's CIFAR-10 size (its
   granularity experiment's model, 32x32, batch 128, 10 classes), 'auto' and 'xla',
   float32 and bfloat16.

Achieved bandwidth (minimum bytes moved per second) is read against the device kind's
published HBM peak (``sepconv.bench.roofline.PUBLISHED_PEAKS``: TPU v5e 819 GB/s, v6e
1640, v4, H100 SXM 3350, H200 4800, A100 40/80GB 1555/2039, L4 300, T4 320); a kind
without a published figure gets no fraction. Writes, under
``results/accelerator/<device kind>/``: ``records.jsonl`` (one record per case, with
provenance and device kind), ``lowering.*`` and ``train_step.*`` tables
(``sepconv.report.lowering``) and ``device.md``, the sweep's summary against the peak.

``quick=True`` runs the whole path on tiny shapes, every phase and no deadline, in about
30 s of CPU time on any backend (the smoke test); without it, a CPU host is refused.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import time
from pathlib import Path

import jax

from sepconv.bench.config import LayerConfig
from sepconv.bench.layer import BenchOptions, bench_sweep
from sepconv.bench.roofline import published_peaks
from sepconv.bench.train_step import TrainStepConfig, bench_train_step, model_factory
from sepconv.conv.table import IMPL_TABLE
from sepconv.conv.tune_cache import host_platform
from sepconv.records import append_record, read_records

REFERENCE = LayerConfig()  # 3x3, 56x56x128 -> 128, batch 32
GROUP_SIZES = (1, 128, 4, 32, 2, 64, 8, 16)
QUICK_LAYER = LayerConfig(batch=2, height=8, width=8, in_channels=16, out_channels=16)
QUICK_GROUP_SIZES = (4,)
TRAIN_224 = TrainStepConfig(model="mobilenet_v1", batch=64, image_size=224,
                            width_multiplier=1.0, num_classes=1000)
# The notebook's run: the granularity experiment on CIFAR-10 (model, width, batch preset).
TRAIN_CIFAR = TrainStepConfig(model="mobilenet_v1_shallow", batch=128, image_size=32,
                              width_multiplier=0.25, num_classes=10)
QUICK_TRAIN = TrainStepConfig(batch=2, image_size=16, width_multiplier=0.25, num_classes=10)
BUDGET_S = 420.0
# Shares of the budget by which each phase must have stopped starting new cases.
PHASE_END = {("conv", "float32"): 0.35, ("conv", "bfloat16"): 0.65, ("train_step", None): 1.0}


def _log(message: str) -> None:
  print(f"[bench device] {message}", file=sys.stderr, flush=True)


def device_slug(device_kind: str) -> str:
  """A folder name for ``device_kind``: 'TPU v5 lite' -> 'tpu_v5_lite'."""
  return re.sub(r"[^a-z0-9]+", "_", device_kind.lower()).strip("_") or "unknown"


def default_out_dir(device_kind: str | None = None) -> Path:
  kind = device_kind or jax.devices()[0].device_kind
  return Path("results") / "accelerator" / device_slug(kind)


def sweep_impls(platform: str) -> tuple[str, ...]:
  """'xla', 'auto', then every implementation of the table that claims ``platform``."""
  claimed = [name for name, impl in IMPL_TABLE.items() if impl.runs_on(platform)]
  return tuple(dict.fromkeys(["xla", "auto", *claimed]))


def hbm_fraction(record: dict, device_kind: str) -> float | None:
  """Achieved bytes/s of an 'ok' layer record over the kind's published HBM peak, or None."""
  peaks = published_peaks(device_kind)
  if peaks is None or record.get("status") != "ok" or "bytes_min" not in record:
    return None
  return record["bytes_min"] / (record["median_ms"] / 1e3) / peaks.bandwidth_Bps


def summary_table(records: list[dict], device_kind: str) -> str:
  """Markdown: per dtype, mode and group size, each impl's median ms, native's bandwidth."""
  import tabulate
  peaks = published_peaks(device_kind)
  layer = [r for r in records if r.get("kind") == "conv_layer"]
  impls = list(dict.fromkeys(r["impl"] for r in layer))
  peak_text = (f"{peaks.name}, published HBM peak {peaks.bandwidth_Bps / 1e9:.0f} GB/s"
               if peaks else "no published HBM peak for this kind: no fraction")
  lines = [f"# {device_kind}: the reference layer against native", "", peak_text, ""]
  for dtype in ("float32", "bfloat16"):
    for mode in ("fwd", "fwdbwd"):
      cases = [r for r in layer if r["config"]["dtype"] == dtype and r["mode"] == mode]
      if not cases:
        continue
      rows = []
      for g in sorted({r["config"]["group_size"] for r in cases}):
        by_impl = {r["impl"]: r for r in cases if r["config"]["group_size"] == g}
        native = by_impl.get("xla")
        fraction = hbm_fraction(native, device_kind) if native else None
        rows.append([g, *(f"{by_impl[i]['median_ms']:.3f}" if i in by_impl and
                          by_impl[i]["status"] == "ok" else (by_impl[i]["status"] if i in by_impl
                                                             else "") for i in impls),
                     "" if not native or native["status"] != "ok" else
                     f"{native['bytes_min'] / (native['median_ms'] / 1e3) / 1e9:.0f}",
                     "" if fraction is None else f"{100 * fraction:.1f}"])
      lines += [f"## {dtype}, {'forward' if mode == 'fwd' else 'forward + backward'} (ms)", "",
                tabulate.tabulate(rows, headers=["group size", *impls, "xla GB/s",
                                                 "xla % HBM peak"], tablefmt="github"), ""]
  return "\n".join(lines) + "\n"


def run(out_dir: str | os.PathLike | None = None, *, quick: bool = False,
        budget_s: float | None = None) -> list[Path]:
  """Measures this process's default device; returns the files written.

  Args:
    out_dir: folder of ``records.jsonl`` (appended to) and the tables (default
      ``results/accelerator/<device kind>``).
    quick: tiny shapes, on any backend: a smoke test of the whole path.
    budget_s: the time budget (default 420 s; none with ``quick``, which runs everything).

  Raises:
    ValueError: no accelerator and not ``quick``; nothing was measured.
  """
  from sepconv.report.lowering import render_lowering
  device = jax.devices()[0]
  platform = host_platform()
  if platform == "cpu" and not quick:
    raise ValueError(f"device (={device.device_kind!r}) is a CPU: run on a TPU or GPU, or "
                     f"pass --quick for the CPU smoke run")
  out_dir = Path(out_dir) if out_dir is not None else default_out_dir(device.device_kind)
  records_path = out_dir / "records.jsonl"
  budget_s = budget_s or (float("inf") if quick else BUDGET_S)
  start = time.monotonic()
  run_id = f"bench_device-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
  base, group_sizes = (QUICK_LAYER, QUICK_GROUP_SIZES) if quick else (REFERENCE, GROUP_SIZES)
  options = BenchOptions(repeats=2 if quick else 10, warmup=1 if quick else 2, budget_s=2.0,
                         min_repeats=2 if quick else 3, torch=False,
                         copy_mib=8 if quick else 1024, matmul_n=128 if quick else None)
  written: list[dict] = []

  def sink(record: dict) -> None:
    append_record(records_path, record)
    written.append(record)

  impls = ("xla", "auto") if quick else sweep_impls(platform)
  for dtype in ("float32", "bfloat16"):
    deadline = start + PHASE_END[("conv", dtype)] * budget_s
    if time.monotonic() > deadline:
      _log(f"out of time: skipped the {dtype} sweep")
      continue
    _log(f"reference layer, {dtype}, {', '.join(impls)}, t={time.monotonic() - start:.0f}s")
    bench_sweep(dataclasses.replace(base, dtype=dtype), group_sizes=group_sizes, impls=impls,
                options=options, on_record=sink, run_id=run_id, deadline=deadline,
                progress=True)
  steps = (QUICK_TRAIN,) if quick else (TRAIN_CIFAR, TRAIN_224)
  for dtype in ("float32",) if quick else ("float32", "bfloat16"):
    for config in steps:
      for impl in ("auto",) if quick else ("auto", "xla"):
        if time.monotonic() > start + budget_s:
          _log(f"out of time: skipped training step {config.image_size}px {dtype} {impl}")
          continue
        bench_train_step(model_factory(dataclasses.replace(config, dtype=dtype)),
                         dataclasses.replace(config, dtype=dtype), [impl],
                         warmup=options.warmup, repeats=2 if quick else 10, budget_s=10.0,
                         on_record=sink, run_id=run_id, progress=True)
  if not written:
    raise ValueError(f"nothing was measured in the budget (={budget_s:g} s)")
  paths = render_lowering(records_path, out_dir)
  summary = out_dir / "device.md"
  summary.write_text(summary_table(read_records(records_path), device.device_kind))
  paths.append(summary)
  _log(f"{len(written)} records appended to {records_path} in {time.monotonic() - start:.0f}s")
  return paths

