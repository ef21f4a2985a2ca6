"""Timing one conv layer (or spatial + pointwise block) across implementations, and sweeps of it.

Every implementation named in ``sepconv.conv.IMPLS`` is timed through the public entry
point, forward alone and forward + backward (gradients of the input and kernels for a
fixed random cotangent, the output returned too so nothing is dead code), each call
jitted, warm and ended by ``block_until_ready``, compile time apart. Each result is one
record: config, timing statistics, analytic counts, achieved rates against the device's
roofline, the largest error against the 'xla' result, and provenance. An implementation
that rejects a config (``ValueError``) yields an 'unsupported' record, not a failure.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sepconv import conv as conv_lib
from sepconv import hostmem, validate
from sepconv.conv import policy
from sepconv.bench import torch_peer
from sepconv.bench.config import LAYERS, MODES, LayerConfig, counts
from sepconv.bench.roofline import roofline
from sepconv.timing import APART_FACTOR, Timing, compile_ahead, side_by_side, xla_cost
from sepconv.provenance import provenance
from sepconv.records.schema import layer_bench_record
from sepconv.conv.table import IMPL_TABLE
from sepconv.conv.tune_cache import host_platform

RECORD_KIND = "conv_layer"
REFERENCE_IMPL = "xla"


def available_impls(layer: str = "conv") -> tuple[str, ...]:
  """Implementation names the conv library offers on this host's platform, read at call time
  (any layer kind)."""
  validate.one_of(layer, "layer", LAYERS)
  host = host_platform()
  return tuple(name for name in conv_lib.IMPLS
               if name not in IMPL_TABLE or IMPL_TABLE[name].runs_on(host))


def parse_impls(text: str | Sequence[str] | None, layer: str = "conv") -> tuple[str, ...]:
  """Validates a comma list (or sequence) of impl names; None or 'all' means every one."""
  known = available_impls(layer)
  if text is None or text == "all":
    return known
  names = [n.strip() for n in text.split(",")] if isinstance(text, str) else list(text)
  for name in names:
    if name not in known:
      raise ValueError(f"impl (={name!r}) must be one of {known} for layer {layer!r}")
  if not names:
    raise ValueError("impls (='') must name at least one implementation")
  return tuple(dict.fromkeys(names))


def make_inputs(config: LayerConfig, seed: int = 0) -> dict:
  """Random input, kernels (fan-in scaled) and cotangent as float32 numpy arrays."""
  rng = np.random.default_rng(seed)
  ho, wo = config.out_hw
  x = rng.standard_normal((config.batch, config.height, config.width, config.in_channels),
                          dtype=np.float32)
  kernels = tuple(
      (rng.standard_normal(shape, dtype=np.float32) / np.sqrt(np.prod(shape[:3]))).astype(np.float32)
      for shape in config.kernel_shapes())
  cotangent = rng.standard_normal((config.batch, ho, wo, config.out_channels), dtype=np.float32)
  return {"x": x, "kernels": kernels, "cotangent": cotangent}


def layer_fn(config: LayerConfig, impl: str) -> Callable:
  """(x, *kernels) -> y through the conv library's public entry point."""
  common = dict(strides=config.stride, padding=config.padding, dilation=config.dilation, impl=impl)
  if config.layer == "conv":
    return lambda x, k: conv_lib.grouped_conv(x, k, feature_group_count=config.groups, **common)

  def spatial_pointwise(x, ks, kp):
    u = conv_lib.grouped_conv(x, ks, feature_group_count=config.groups, **common)
    return conv_lib.grouped_conv(u, kp, padding="VALID", impl=impl)
  return spatial_pointwise


def mode_fn(fn: Callable, mode: str) -> Callable:
  """The function timed: forward, or forward plus the VJP of a given cotangent."""
  if mode == "fwd":
    return lambda x, *kernels: (fn(x, *kernels),)

  def fwdbwd(x, *kernels_and_ct):
    *kernels, ct = kernels_and_ct
    y, vjp = jax.vjp(fn, x, *kernels)
    return (y, *vjp(ct))
  return fwdbwd


def _rel_err(outputs: Sequence, reference: Sequence) -> float:
  """Largest |a - b| / max|b| over the output tensors, in float32."""
  worst = 0.0
  for a, b in zip(outputs, reference, strict=True):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    worst = max(worst, float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30)))
  return worst


def auto_plan(config: LayerConfig, impl: str, mode: str, x, kernels) -> dict | None:
  """What 'auto' ran for the forward and (after fwdbwd) each gradient, where the library says.

  Gradients are chosen when a backward pass is traced, so after a forward-only run they
  stay None rather than trigger a measurement here.
  """
  if impl != "auto" or config.layer != "conv":
    return None
  geom = conv_lib.conv_geometry(x, kernels[0], feature_group_count=config.groups,
                                strides=config.stride, padding=config.padding,
                                dilation=config.dilation)
  plan = dataclasses.asdict(conv_lib.plan_for(geom, "auto"))
  for computation, choice in plan.items():
    if choice == "auto":
      # Already chosen (and cached) while the timed backward pass was traced.
      plan[computation] = policy.choose(geom, computation) if mode == "fwdbwd" else None
  return plan


def _rates(record: dict, peaks: dict) -> dict:
  """Achieved FLOP/s and bytes/s and their fractions of the roofline peaks.

  On CPU the bandwidth peak is STREAM's copy into an existing buffer; a jitted call writes
  its output into a fresh buffer, so its fraction also carries those first-touch page faults.
  """
  seconds = record["median_ms"] / 1e3
  flops, nbytes = record["flops"], record["bytes_min"]
  bound_s = max(flops / peaks["peak_flops_per_s"], nbytes / peaks["peak_bandwidth_Bps"])
  return {
      "achieved_flops_per_s": flops / seconds,
      "achieved_bytes_per_s": nbytes / seconds,
      "fraction_of_peak_flops": flops / seconds / peaks["peak_flops_per_s"],
      "fraction_of_peak_bandwidth": nbytes / seconds / peaks["peak_bandwidth_Bps"],
      "roofline_ms": bound_s * 1e3,
      "fraction_of_roofline": bound_s / seconds,
  }


@dataclasses.dataclass
class BenchOptions:
  """How long and how hard to time each case."""
  repeats: int = 10
  warmup: int = 2
  budget_s: float | None = 30.0  # Per case: stop repeating after this...
  min_repeats: int = 3  # ...once this many timed calls are done.
  torch: bool = True
  check: bool = True  # Compare every output with the 'xla' one.
  copy_mib: int | None = None  # Streaming size; None: 4x the last-level cache, >= 1 GiB.
  matmul_n: int | None = None
  seed: int = 0


def _log(progress: bool, message: str) -> None:
  if progress:
    print(message, file=sys.stderr, flush=True)


def bench_layer(config: LayerConfig, *, impls: Iterable[str] | None = None,
                modes: Iterable[str] = MODES, options: BenchOptions | None = None,
                on_record: Callable[[dict], None] | None = None, run_id: str | None = None,
                progress: bool = False) -> list[dict]:
  """Times ``config`` for each impl and mode (plus torch peers) and returns the records.

  Args:
    config: the layer.
    impls: implementation names (default: all of ``available_impls(config.layer)``).
    modes: subset of ('fwd', 'fwdbwd').
    options: repeats, warm-up, time budget, torch on/off, roofline measurement sizes.
    on_record: called with each record as soon as it exists (e.g. to append to a file).
    run_id: shared by every record of one invocation (default: derived from time and pid).
    progress: print one line per case to stderr.

  Returns:
    The records, in the order produced.
  """
  options = options or BenchOptions()
  impls = parse_impls(None if impls is None else list(impls), config.layer)
  modes = tuple(modes)
  for mode in modes:
    if mode not in MODES:
      raise ValueError(f"mode (={mode!r}) must be one of {MODES}")
  run_id = run_id or f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
  prov = provenance()
  host_memory_kept = hostmem.kept()  # process-wide (``sepconv.hostmem``), recorded
  peaks = roofline(config.dtype, copy_mib=options.copy_mib, matmul_n=options.matmul_n)
  platform = prov["platform"]
  use_torch, torch_reason = torch_peer.torch_status(platform) if options.torch else (False, "")
  arrays = make_inputs(config, options.seed)
  dtype = jnp.dtype(config.dtype)
  x = jnp.asarray(arrays["x"], dtype)
  kernels = tuple(jnp.asarray(k, dtype) for k in arrays["kernels"])
  ct = jnp.asarray(arrays["cotangent"], dtype)
  records = []

  def emit(impl: str, mode: str, status: str, timing: Timing | None = None, **fields) -> None:
    record = layer_bench_record(
        RECORD_KIND, run_id=run_id, mode=mode, status=status, config=config.to_dict(),
        provenance=prov, timing=None if timing is None else timing.summary(), impl=impl,
        **counts(config, mode), **fields, keep_freed_host_memory=host_memory_kept,
        roofline=peaks)
    if timing is not None:
      record.update(_rates(record, peaks))
    records.append(record)
    if on_record is not None:
      on_record(record)
    if timing is None:
      what = f"{status}: {fields.get('reason', '')}"
    elif timing.compile_ms is None:
      what = f"{timing.median_ms:.3f} ms"
    else:
      what = f"{timing.median_ms:.3f} ms (compile {timing.compile_ms:.0f} ms)"
    _log(progress, f"[bench] {config.layer} g={config.group_size} {config.dtype} {mode} {impl}: {what}")

  for mode in modes:
    args = (x, *kernels) if mode == "fwd" else (x, *kernels, ct)
    reference = None
    if options.check:
      if REFERENCE_IMPL in impls:
        # The reference comes first; its outputs are kept for the others.
        impls = (REFERENCE_IMPL, *(i for i in impls if i != REFERENCE_IMPL))
      else:
        reference = jax.jit(mode_fn(layer_fn(config, REFERENCE_IMPL), mode))(*args)
    calls, executables, compile_ms, torch_peers, unsupported = {}, {}, {}, {}, {}
    for impl in impls:
      try:
        executables[impl], compile_ms[impl] = compile_ahead(
            mode_fn(layer_fn(config, impl), mode), args)
      except ValueError as e:
        unsupported[impl] = str(e)
        continue
      calls[impl] = functools.partial(executables[impl], *args)
    # The implementations timed side by side, in interleaved rounds, so the ratios between
    # them are measured under the same load (those far slower than the fastest in rounds of
    # their own, after); then torch's layouts, side by side too (torch's OpenMP threads keep
    # spinning after a call, which would slow the JAX call after it).
    together = functools.partial(side_by_side, warmup=options.warmup, repeats=options.repeats,
                                 budget_s=options.budget_s, min_repeats=options.min_repeats,
                                 apart_factor=APART_FACTOR)
    timed = together(calls)
    if use_torch:
      for layout in torch_peer.LAYOUTS:
        torch_peers[layout] = torch_peer.torch_layer(config, mode, layout, arrays,
                                                     platform=platform)
      with torch_peer.cpu_threads(platform) as threads:  # each call waits for its device
        timed.update(together({k: p.call for k, p in torch_peers.items()},
                              sync=lambda out: out))
    for impl in impls:
      if impl in unsupported:
        emit(impl, mode, "unsupported", reason=unsupported[impl])
        continue
      times, out, kept = timed.pop(impl)
      if options.check and impl == REFERENCE_IMPL:
        reference = out
      err = _rel_err(out, reference) if reference is not None else None
      emit(impl, mode, "ok", Timing(tuple(times), compile_ms[impl], kept), framework="jax",
           max_rel_err_vs_xla=err, auto_plan=auto_plan(config, impl, mode, x, kernels),
           **xla_cost(executables[impl]))
      del out
    np_ref = None if reference is None else tuple(np.asarray(r, np.float32) for r in reference)
    for layout, peer in torch_peers.items():
      times, out, kept = timed.pop(layout)
      out = peer.outputs(out)
      err = _rel_err(out, np_ref) if np_ref is not None else None
      emit(layout, mode, "ok", Timing(tuple(times), None, kept), max_rel_err_vs_xla=err,
           **{**peer.extra, "torch_threads": threads})
    del calls, timed, executables
    if options.torch and not use_torch:
      _log(progress, f"[bench] torch peer skipped: {torch_reason}")
    del reference
  return records


def sweep_group_sizes(in_channels: int, out_channels: int | None = None,
                      layer: str = "conv") -> tuple[int, ...]:
  """1, 2, 4, ... up to ``in_channels`` (and ``in_channels`` itself), each a valid group size."""
  sizes, g = [], 1
  while g < in_channels:
    sizes.append(g)
    g *= 2
  sizes.append(in_channels)
  out = []
  for g in sizes:
    groups = in_channels // g
    if in_channels % g == 0 and (layer != "conv" or (out_channels or in_channels) % groups == 0):
      out.append(g)
  return tuple(out)


def bench_sweep(base: LayerConfig, *, group_sizes: Sequence[int] | None = None,
                impls: Iterable[str] | None = None, modes: Iterable[str] = MODES,
                options: BenchOptions | None = None,
                on_record: Callable[[dict], None] | None = None, run_id: str | None = None,
                deadline: float | None = None, progress: bool = False) -> list[dict]:
  """``bench_layer`` for each group size of ``base``'s layer shape.

  Args:
    base: the layer; its ``group_size`` is replaced by each swept value.
    group_sizes: default ``sweep_group_sizes`` of the layer's channels.
    impls, modes, options, on_record, run_id, progress: as ``bench_layer``.
    deadline: a ``time.monotonic()`` value; group sizes not started by then are skipped
      (said on stderr), so a sweep can be fitted into a fixed slot.

  Returns:
    All records, in the order produced.
  """
  if group_sizes is None:
    group_sizes = sweep_group_sizes(base.in_channels, base.out_channels, base.layer)
  configs = [dataclasses.replace(base, group_size=g) for g in group_sizes]  # Validates all first.
  impls = None if impls is None else list(impls)
  run_id = run_id or f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
  records = []
  for i, config in enumerate(configs):
    if deadline is not None and time.monotonic() > deadline:
      _log(True, f"[bench] deadline reached: skipped group sizes {list(group_sizes[i:])}")
      break
    _log(progress, f"[bench] group size {config.group_size} ({i + 1}/{len(configs)})")
    records += bench_layer(config, impls=impls, modes=modes, options=options,
                           on_record=on_record, run_id=run_id, progress=progress)
  return records
