"""Measuring the candidates for one computation of one convolution, and what that may cost.

``measure`` runs each candidate, jitted, on random arrays of the geometry's shape and
dtype, on the default device, in a thread of its own, outside every trace: each compiled
and called ``WARMUP`` times (a process's first calls grow its heap and page-fault, so a
candidate timed then would lose to the ones after it), then timed in ``repeats``
interleaved rounds (one call of every candidate per round, so load on a busy host falls on
all alike), a candidate leaving the rounds once it is 3x slower than the best.
A candidate that fails there is dropped with a warning naming it and the reason.

``Budget`` bounds the seconds one process spends measuring: each candidate on an
accelerator is a compilation of seconds, so past the budget ``impl="auto"`` takes the
heuristic for geometries not measured yet. ``SEPCONV_AUTOTUNE_BUDGET`` sets it in
seconds ('none' for no bound); by default 180 s on TPU and GPU, no bound on CPU (where
the heuristic's exceptions are the slow cases).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from sepconv import timing
from sepconv.conv.geometry import ConvGeometry
from sepconv.conv.table import computation_fn

BUDGET_ENV = "SEPCONV_AUTOTUNE_BUDGET"
ACCELERATOR_BUDGET_S = 180.0
WARMUP = 3


@dataclasses.dataclass
class Budget:
  """Seconds this process may spend measuring (None: unbounded) and what it has spent."""
  limit_s: float | None = None
  seconds: float = 0.0
  measurements: int = 0
  exhausted_warned: bool = False

  @classmethod
  def from_env(cls, platform: str) -> Budget:
    """``SEPCONV_AUTOTUNE_BUDGET`` seconds, else the default for ``platform``."""
    text = os.environ.get(BUDGET_ENV, "").strip().lower()
    if not text:
      return cls(None if platform == "cpu" else ACCELERATOR_BUDGET_S)
    if text in ("none", "inf", "unbounded"):
      return cls(None)
    try:
      limit = float(text)
    except ValueError:
      raise ValueError(f"{BUDGET_ENV} (={text!r}) must be seconds or 'none'") from None
    if limit < 0:
      raise ValueError(f"{BUDGET_ENV} (={limit}) must be >= 0")
    return cls(limit)

  def allows(self) -> bool:
    """Whether another measurement may start."""
    if self.limit_s is None or self.seconds < self.limit_s:
      return True
    if not self.exhausted_warned:
      self.exhausted_warned = True
      warnings.warn(f"sepconv auto: measuring budget of {self.limit_s:g} s spent "
                    f"({self.measurements} measurements); convolutions not measured yet take "
                    f"the heuristic (raise {BUDGET_ENV} to measure more)", stacklevel=3)
    return False

  def spend(self, seconds: float) -> None:
    self.seconds += seconds
    self.measurements += 1


def _first_line(error: Exception) -> str:
  text = str(error).strip()
  return text.splitlines()[0][:200] if text else "no message"


def _timed(fns: dict, args, repeats: int) -> dict[str, float]:
  """Median wall ms of each jitted fn on ``args``: compiled, then ``WARMUP`` warm calls each and
  ``repeats`` interleaved rounds (``timing.side_by_side``); a candidate 3x slower than the
  fastest leaves at once (one warm call is enough to know it loses)."""
  calls, errors = {}, {}
  for name, fn in fns.items():
    try:
      compiled = fn.lower(*args).compile()
    except Exception as e:  # noqa: BLE001 (any failure of a candidate only removes it)
      errors[name] = e
      continue
    calls[name] = functools.partial(compiled, *args)
  timed = timing.side_by_side(calls, warmup=WARMUP, repeats=repeats, cutoff_factor=3.0,
                              errors=errors)
  for name, e in errors.items():
    warnings.warn(f"sepconv auto: candidate {name!r} dropped, it failed on "
                  f"{jax.default_backend()} ({type(e).__name__}: {_first_line(e)})",
                  stacklevel=2)
  return {name: float(np.median(times)) for name, (times, _, _) in timed.items()}


def random_arrays(dtype, *shapes):
  """Concrete standard-normal arrays on the default device (no denormals in the sums)."""
  rng = np.random.default_rng(0)
  return tuple(jax.device_put(jnp.asarray(rng.standard_normal(shape, dtype=np.float32),
                                          jnp.dtype(dtype))) for shape in shapes)


def outside_any_trace(fn):
  """``fn()`` run in a fresh thread, where no jit, vmap, grad or scan of ours is tracing.

  JAX's trace state is per thread: measuring here, while the caller's trace waits, runs
  every candidate eagerly on concrete arrays whatever encloses the ``grouped_conv`` call
  and whichever jax version this is (``ensure_compile_time_eval`` cannot evaluate every
  primitive everywhere, e.g. a ``lax.scan`` on jax 0.7).
  """
  with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
    return pool.submit(fn).result()


def measure(geom: ConvGeometry, computation: str, names: list[str],
            repeats: int = 7) -> dict[str, float]:
  """Median wall milliseconds of each of ``names`` for ``computation``, measured now, eagerly.

  Candidates that fail here are left out (with a warning), so the result may be empty.
  """
  def run():
    args = random_arrays(geom.dtype, geom.in_shape, geom.kernel_shape, geom.out_shape)
    return _timed({n: jax.jit(computation_fn(n, computation, geom)) for n in names}, args,
                  repeats)
  return outside_any_trace(run)
