"""Opt-in: keep freed host memory, so large CPU buffers need not page-fault on every call.

glibc serves allocations above 32 MiB with a fresh ``mmap`` and returns them to the OS on
``free``. XLA:CPU allocates every output and temporary buffer per call, so a 3x3
depthwise conv on 32x56x56x128 float32 (a 51 MiB output) can spend most of its time in
the kernel zeroing 12,500 new pages: on a 2-core host about 12 ms of page faults
against 3-5 ms of arithmetic and memory traffic. PyTorch's CPU tensors are allocated the
same way. ``keep_freed_host_memory`` asks glibc to serve large blocks from its heap and
to keep freed memory for reuse (``mallopt``); measured there, a standalone 51 MiB jitted
elementwise op went from 13 ms to 2.3 ms. Whether a given call still faults depends on
the allocator's state (which thread allocates, what else holds the heap), so with JAX
and PyTorch interleaved in one process the effect was inconsistent: time frameworks in
separate blocks and report whether this was on. In one process, first without it and then
with it (2 vCPUs, heavily loaded), the 'shift' depthwise forward (3x3, 56x56x128, batch 32,
float32) went from about 11% to about 29% of the STREAM copy bandwidth
(``sepconv.bench.roofline``); the 'ffi' kernels, which ask for transparent huge pages on
their outputs, were not changed by it. Blocks above the trim threshold (1 GiB) still go
back to the OS when the top of the heap is freed. It changes nothing numerically, costs
resident memory (kept at its peak), and the library calls it only when asked:
``sepconv bench layer|sweep|train-step --keep-freed-host-memory`` (``BenchOptions``,
``bench_train_step``), which records whether it took effect in every record.
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
