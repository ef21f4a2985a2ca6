"""Keeping freed host memory, so XLA:CPU's buffers do not page-fault on every call.

XLA:CPU allocates a call's temporaries as one block (81 MB for the MobileNet v1 x0.5
training step at 64x64, batch 32) and its outputs as fresh buffers, every call. glibc
serves blocks above its mmap threshold (at most 32 MiB) with a fresh ``mmap``, and a
thread other than the main one gets its own arena, whose heaps are at most 64 MiB, so
a larger block from one of XLA's threads is mmapped whatever the threshold. Either way
the block goes back to the OS on ``free``, and the next call's first touch of each of
its pages is a page fault that zeroes it: about 20,000 faults per step of that model, and
most of its time on a 2-core host (measured there: 41 ms per step as it is, 25 ms with
the memory kept; PyTorch's channels-last twin 25-33 ms). A single large output does the
same: a 3x3 depthwise conv on 32x56x56x128 float32 (a 51 MiB output) spent about 12 ms
zeroing 12,500 new pages against 3-5 ms of arithmetic and memory traffic.

``keep_freed_host_memory`` asks glibc (``mallopt``) for one arena shared by all threads,
no mmapped blocks and a trim threshold of 1 GiB, so freed blocks stay in the heap and
the next call reuses pages that are already mapped (the heap grows to a few blocks over
the first calls where a call's block is freed after the next call took its own, as on
jax 0.7.2, then settles). It changes nothing numerically; the process keeps its peak
memory resident. A thread takes its arena on its first allocation, so the call must come
before JAX starts its backend (the first computation or ``jax.devices()``): afterwards
XLA's threads keep the arenas they have and it returns False.

The ``sepconv`` command line does this when it starts, and so do the ablation's worker
processes; ``SEPCONV_KEEP_FREED_HOST_MEMORY=0`` turns it off (``wanted``). A program
using the library calls it first thing. Each benchmark record says whether the process
ran with it (``kept``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import warnings

ENV = "SEPCONV_KEEP_FREED_HOST_MEMORY"

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8

_kept = False


def wanted() -> bool:
  """False where the environment turns it off (``SEPCONV_KEEP_FREED_HOST_MEMORY=0``)."""
  return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def backend_started() -> bool:
  """Whether JAX has started its backend (and with it XLA's threads) in this process."""
  bridge = sys.modules.get("jax._src.xla_bridge")
  started = getattr(bridge, "backends_are_initialized", None)
  return bool(started and started())


def kept() -> bool:
  """Whether ``keep_freed_host_memory`` took effect in this process."""
  return _kept


def keep_freed_host_memory() -> bool:
  """Keeps freed memory in glibc's heap for reuse (module docstring); idempotent.

  Returns:
    True if it took effect; False off glibc, or once JAX's backend has started (the
    settings are made, but XLA's threads keep their own arenas; a warning says so).
  """
  global _kept
  if _kept:
    return True
  name = ctypes.util.find_library("c")
  if name is None:
    return False
  try:
    mallopt = ctypes.CDLL(name).mallopt
  except (OSError, AttributeError):
    return False
  mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
  mallopt.restype = ctypes.c_int
  late = backend_started()
  ok = all([mallopt(_M_ARENA_MAX, 1), mallopt(_M_MMAP_MAX, 0),
            mallopt(_M_TRIM_THRESHOLD, 2**30)])
  if ok and late:
    warnings.warn("keep_freed_host_memory() was called after JAX started its backend, so "
                  "XLA's threads keep their own memory arenas; call it before the first "
                  "computation", stacklevel=2)
  _kept = ok and not late
  return _kept


def keep_if_wanted() -> bool:
  """``keep_freed_host_memory()`` unless turned off (``wanted``) or too late (no warning)."""
  if _kept or not wanted() or backend_started():
    return _kept
  return keep_freed_host_memory()
