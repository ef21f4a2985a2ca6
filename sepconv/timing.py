"""Wall-clock timing, the one routine the whole package measures with.

``measure`` times warm calls of anything (a compiled JAX call, a PyTorch call), each
ended by a ``sync`` (``jax.block_until_ready`` by default) so asynchronous dispatch never
hides work; a time budget and a cut-off keep one slow case from stalling a sweep or an
autotuning pass. ``side_by_side`` times several calls in interleaved rounds, so the
ratios between them are measured under the same load (the autotuner's candidates, a
benchmark's implementations). ``time_jitted`` compiles apart (``compile_ahead``:
``jit(f).lower(...).compile()``), so the repeats measure warm, jitted calls only. Benchmarks, the autotuner, the roofline
and the experiment runner all time through here.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np


# The benchmarks time implementations more than this many times slower than the fastest
# (after warm-up) in rounds of their own (``side_by_side``'s ``apart_factor``).
APART_FACTOR = 3.0


@dataclasses.dataclass(frozen=True)
class Timing:
  """Per-call wall times (ms) of warm calls plus the one-off compile time."""
  times_ms: tuple[float, ...]
  compile_ms: float | None = None
  warmup_kept: bool = False  # The first time is a warm-up call longer than the budget.

  @property
  def median_ms(self) -> float:
    return float(np.median(self.times_ms))

  @property
  def p25_ms(self) -> float:
    return float(np.percentile(self.times_ms, 25))

  @property
  def p75_ms(self) -> float:
    return float(np.percentile(self.times_ms, 75))

  @property
  def min_ms(self) -> float:
    return float(min(self.times_ms))

  @property
  def max_ms(self) -> float:
    return float(max(self.times_ms))

  def summary(self) -> dict:
    """Flat fields for a record: median, quartiles, extremes, count, raw times."""
    return {
        "median_ms": self.median_ms,
        "p25_ms": self.p25_ms,
        "p75_ms": self.p75_ms,
        "iqr_ms": self.p75_ms - self.p25_ms,
        "min_ms": self.min_ms,
        "max_ms": self.max_ms,
        "repeats": len(self.times_ms),
        "times_ms": list(self.times_ms),
        "compile_ms": self.compile_ms,
        "warmup_kept": self.warmup_kept,
    }


def measure(call: Callable[[], Any], *, warmup: int, repeats: int,
            budget_s: float | None = None, min_repeats: int = 3, cutoff_ms: float | None = None,
            sync: Callable[[Any], Any] = jax.block_until_ready) -> tuple[list[float], Any, bool]:
  """Times ``call()`` ``repeats`` times after ``warmup`` untimed calls.

  Args:
    call: a no-argument callable returning arrays (or a pytree of them).
    warmup: untimed calls first (caches, allocator, thread pools).
    repeats: timed calls wanted.
    budget_s: if set, stop once this many seconds of timed calls have passed and at
      least ``min_repeats`` calls are done, so one slow case cannot stall a sweep. A
      warm-up call that alone outlasts the budget is kept as the first timed call (its
      first-call overheads are noise at that length) and ends the warm-up.
    min_repeats: the fewest timed calls kept when the budget cuts in.
    cutoff_ms: if set, a call slower than this ends the measurement at once and is
      kept (a warm-up call as the only timed one): enough to know the candidate loses
      to one already measured.
    sync: waits for ``call()``'s result to be computed and returns it.

  Returns:
    (per-call times in ms, the last call's result, whether a warm-up call was kept).
  """
  return side_by_side({"": call}, warmup=warmup, repeats=repeats, budget_s=budget_s,
                      min_repeats=min_repeats, cutoff_ms=cutoff_ms, sync=sync)[""]


def side_by_side(calls: Mapping[str, Callable[[], Any]], *, warmup: int, repeats: int,
                 budget_s: float | None = None, min_repeats: int = 3,
                 cutoff_ms: float | None = None, cutoff_factor: float | None = None,
                 apart_factor: float | None = None,
                 sync: Callable[[Any], Any] = jax.block_until_ready,
                 errors: dict[str, Exception] | None = None
                 ) -> dict[str, tuple[list[float], Any, bool]]:
  """Times several calls in interleaved rounds: ``measure`` for each, side by side.

  The warm-up calls go name by name; then each round times one call of every name still
  running, in an order shuffled each round (a fixed seed), so load that comes and goes on
  the host, and whatever the call before leaves behind (freed memory, busy threads), falls
  on all of them alike instead of on whichever was being timed then or came after a
  given other name (with ``apart_factor``, the much slower names in rounds of their own
  after the others). Each name follows ``measure``'s rules on its own
  calls (``repeats``, ``budget_s`` with ``min_repeats``, ``cutoff_ms``).

  Args:
    calls: name -> no-argument callable, timed in this order within each round.
    warmup, repeats, budget_s, min_repeats, cutoff_ms, sync: as ``measure``, per name.
    cutoff_factor: if set, a name whose call (a warm-up call too) is slower than this
      factor times the fastest so far (warm-up calls against warm-up calls, then
      medians) leaves at once and keeps that call: it loses to another one.
    apart_factor: if set, names whose last warm-up call is slower than this factor times
      the fastest one are timed after the others, in rounds of their own: a call of
      hundreds of milliseconds between the close contenders' calls leaves them cold
      caches and idle threads (C++ kernels between 0.3 s native convs took 1.7x their time
      timed apart), which would decide a comparison between calls a few percent apart.
    errors: if given, a call that raises is left out and its exception stored here
      under its name; otherwise the exception propagates.

  Returns:
    name -> (per-call times in ms, the last call's result, whether a warm-up call was
    kept), for every name that did not raise.
  """
  if repeats < 1:
    raise ValueError(f"repeats (={repeats}) must be at least 1")
  if warmup < 0:
    raise ValueError(f"warmup (={warmup}) must be non-negative")
  if min_repeats < 1:
    raise ValueError(f"min_repeats (={min_repeats}) must be at least 1")
  times = {name: [] for name in calls}
  out, kept, spent, warm_ms = dict.fromkeys(calls), dict.fromkeys(calls, False), {}, {}

  def once(name):
    t0 = time.perf_counter()
    try:
      result = sync(calls[name]())
    except Exception as e:
      if errors is None:
        raise
      errors[name] = e
      return None
    ms = (time.perf_counter() - t0) * 1e3
    out[name] = result  # the previous result is freed here, outside the timed window
    return ms

  live = []
  for name in calls:
    ms, stop = None, False
    for _ in range(warmup):
      ms = once(name)
      if ms is None:
        break
      slow = cutoff_factor is not None and warm_ms and ms > cutoff_factor * min(warm_ms.values())
      if slow or (cutoff_ms is not None and ms > cutoff_ms):
        times[name], kept[name], stop = [ms], True, True
        break
      if budget_s is not None and ms > budget_s * 1e3:
        times[name], kept[name] = [ms], True
        break
    if name in (errors or {}):
      continue
    if ms is not None and not kept[name]:
      warm_ms[name] = ms
    spent[name] = sum(times[name]) / 1e3
    if not stop:
      live.append(name)

  def running(name, fastest):
    t = times[name]
    if not t:
      return True
    if len(t) >= repeats or (cutoff_ms is not None and t[-1] > cutoff_ms):
      return False
    if cutoff_factor is not None and fastest is not None and min(t) > cutoff_factor * fastest:
      return False
    return not (budget_s is not None and len(t) >= min(min_repeats, repeats)
                and spent[name] > budget_s)

  live = [n for n in live if running(n, None)]
  groups = [live]
  if apart_factor is not None and warm_ms:
    close = apart_factor * min(warm_ms.values())
    # A name whose warm-up was kept as its first time (longer than the budget) is far.
    last = {n: warm_ms.get(n, times[n][0] if times[n] else math.inf) for n in live}
    groups = [[n for n in live if last[n] <= close], [n for n in live if last[n] > close]]
  order = np.random.default_rng(0)
  for live in groups:
    while live:
      for name in (live[i] for i in order.permutation(len(live))):
        ms = once(name)
        if ms is not None:
          times[name].append(ms)
          spent[name] += ms / 1e3
      fastest = min((float(np.median(t)) for n, t in times.items()
                     if t and n not in (errors or {})), default=None)
      live = [n for n in live if n not in (errors or {}) and running(n, fastest)]
  return {n: (times[n], out[n], kept[n]) for n in calls if n not in (errors or {})}


def median_ms(call: Callable[[], Any], *, warmup: int, repeats: int,
              budget_s: float | None = None) -> float:
  """Median wall ms of ``repeats`` warm calls of ``call`` (``measure``'s rules)."""
  return float(np.median(measure(call, warmup=warmup, repeats=repeats, budget_s=budget_s)[0]))


def compile_ahead(fn: Callable, args: Sequence[Any],
                  compiler_options: dict | None = None) -> tuple[Any, float]:
  """Lowers and compiles ``fn`` for ``args`` ahead of any call; returns (executable, ms taken).

  ``fn`` is a plain function (jitted here) or an already ``jax.jit``-wrapped one (kept, with
  its donation and static arguments). ``compiler_options`` are XLA options for this one
  compilation.
  """
  jitted = fn if hasattr(fn, "lower") else jax.jit(fn)
  t0 = time.perf_counter()
  lowered = jitted.lower(*args)
  compiled = lowered.compile(compiler_options) if compiler_options else lowered.compile()
  return compiled, (time.perf_counter() - t0) * 1e3


def time_jitted(fn: Callable, args: Sequence[Any], *, warmup: int, repeats: int,
                budget_s: float | None = None, min_repeats: int = 3,
                cutoff_ms: float | None = None, compiler_options: dict | None = None,
                call: Callable[[Any], Callable[[], Any]] | None = None
                ) -> tuple[Timing, Any, Any]:
  """Compiles ``fn`` for ``args`` (``compile_ahead``), then times warm calls (``measure``).

  The compile-then-time routine for one function (several side by side: ``compile_ahead``
  each, then ``side_by_side``), so compile time is always apart.

  Args:
    fn: function of ``args`` returning arrays, plain or already jitted (e.g. with
      ``donate_argnums``).
    args: concrete arrays (already on the device).
    warmup: untimed warm calls after compiling.
    repeats: timed calls (see ``measure`` for ``budget_s``, ``min_repeats``, ``cutoff_ms``).
    budget_s, min_repeats, cutoff_ms: as ``measure``.
    compiler_options: XLA options for this one compilation.
    call: ``compiled -> (() -> result)``, the call each timing runs (default
      ``compiled(*args)``); e.g. one that feeds donated state back, as a training loop does.

  Returns:
    (Timing, the last call's result, the compiled executable).
  """
  compiled, compile_ms = compile_ahead(fn, args, compiler_options)
  run = call(compiled) if call is not None else (lambda: compiled(*args))
  times, out, kept_warmup = measure(run, warmup=warmup, repeats=repeats, budget_s=budget_s,
                                    min_repeats=min_repeats, cutoff_ms=cutoff_ms)
  return Timing(tuple(times), compile_ms, kept_warmup), out, compiled


def xla_cost(compiled) -> dict:
  """XLA's own cost estimate of a compiled executable ({} when unavailable)."""
  try:
    cost = compiled.cost_analysis()
  except Exception:  # Backends may not implement it; the record then says nothing.
    return {}
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  out = {}
  for key, name in (("flops", "xla_flops"), ("bytes accessed", "xla_bytes_accessed")):
    value = (cost or {}).get(key)
    if value is not None and math.isfinite(float(value)) and float(value) >= 0:
      out[name] = float(value)
  return out
