"""Opt-in: keep freed host memory, so large CPU buffers stop page-faulting on every call.

glibc serves allocations above 32 MiB with a fresh ``mmap`` and returns them to the OS on
``free``. XLA:CPU allocates every output and temporary buffer per call, so a 3x3
depthwise conv on 32x56x56x128 float32 (a 51 MiB output) spends most of its time in
the kernel zeroing 12,500 new pages: on a 2-core host about 12 ms of page faults
against about 5 ms of arithmetic and memory traffic. PyTorch's CPU allocator does the
same, so both are slowed alike. ``keep_freed_host_memory`` asks glibc to serve large
blocks from its heap and to keep freed memory for reuse (``mallopt``), which removes
those faults for every later allocation in the process, JAX's and PyTorch's alike; the
cost is that the process's resident memory stays at its peak. It changes nothing
numerically and is never called by the library itself: benchmarks and training
scripts may call it once at start-up (report it beside the numbers).
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def keep_freed_host_memory() -> bool:
  """Tells glibc to stop mmapping large blocks and to keep freed memory; False if not glibc."""
  name = ctypes.util.find_library("c")
  if name is None:
    return False
  try:
    libc = ctypes.CDLL(name)
    mallopt = libc.mallopt
  except (OSError, AttributeError):
    return False
  mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
  mallopt.restype = ctypes.c_int
  return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**30))
