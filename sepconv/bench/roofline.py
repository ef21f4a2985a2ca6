"""Roofline peaks: published numbers for accelerators, measured numbers for the host.

A benchmark's achieved FLOP/s and bytes/s mean little alone; they are reported as
fractions of the device's peaks. On GPU and TPU the peaks are the vendor's published
figures, looked up by JAX's ``device_kind``. A CPU has no useful published figure, so
its peaks are measured in the same run: STREAM's copy (``np.copyto`` into an existing
buffer, bytes read + bytes written, best of several, on an array several times the
last-level cache) and a large matmul's FLOP/s in the benchmark's dtype. Beside the peak
the record keeps the rates a jitted computation actually streams at: into freshly
allocated buffers (numpy's and XLA's, page faults included) and in place (donated).
The jitted measurements are also taken on accelerators and recorded beside the published
figures, as a sanity check of the table.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import pathlib
import threading

import jax
import jax.numpy as jnp
import numpy as np

from sepconv import timing
from sepconv.provenance import usable_cpus

_T = 1e12
_G = 1e9


@dataclasses.dataclass(frozen=True)
class PublishedPeaks:
  """Vendor peaks of one accelerator (dense math, no sparsity)."""
  name: str
  bandwidth_Bps: float  # main-memory (HBM) bandwidth, bytes/s
  bfloat16_flops: float | None  # dense bf16 matrix FLOP/s; None where there is no bf16 unit
  float32_flops: float | None  # plain f32 FLOP/s (not TF32 tensor cores); None if unpublished
  source: str


# Matched in order against ``device_kind.lower()``: the first substring found wins, so
# more specific names (H100 PCIe, TPU v5 lite) come before their families. TPU v2/v3
# expose each core as a JAX device, so their entries are per core (half a chip).
PUBLISHED_PEAKS: tuple[tuple[str, PublishedPeaks], ...] = (
    ("h100 pcie", PublishedPeaks("H100 PCIe", 2.0 * _T, 756 * _T, 51 * _T,
                                 "NVIDIA H100 Tensor Core GPU datasheet")),
    ("h100 nvl", PublishedPeaks("H100 NVL", 3.9 * _T, 835 * _T, 60 * _T,
                                "NVIDIA H100 Tensor Core GPU datasheet")),
    ("h100", PublishedPeaks("H100 SXM", 3.35 * _T, 989 * _T, 67 * _T,
                            "NVIDIA H100 Tensor Core GPU datasheet")),
    ("h200", PublishedPeaks("H200 SXM", 4.8 * _T, 989 * _T, 67 * _T,
                            "NVIDIA H200 Tensor Core GPU datasheet")),
    ("a100-sxm4-80gb", PublishedPeaks("A100 SXM 80GB", 2.039 * _T, 312 * _T, 19.5 * _T,
                                      "NVIDIA A100 Tensor Core GPU datasheet")),
    ("a100 80gb pcie", PublishedPeaks("A100 PCIe 80GB", 1.935 * _T, 312 * _T, 19.5 * _T,
                                      "NVIDIA A100 Tensor Core GPU datasheet")),
    ("a100", PublishedPeaks("A100 40GB", 1.555 * _T, 312 * _T, 19.5 * _T,
                            "NVIDIA A100 Tensor Core GPU datasheet")),
    ("l40s", PublishedPeaks("L40S", 864 * _G, 362 * _T, 91.6 * _T, "NVIDIA L40S datasheet")),
    ("l4", PublishedPeaks("L4", 300 * _G, 121 * _T, 30.3 * _T, "NVIDIA L4 datasheet")),
    ("t4", PublishedPeaks("T4", 320 * _G, None, 8.1 * _T, "NVIDIA T4 datasheet")),
    ("v100", PublishedPeaks("V100 SXM2", 900 * _G, None, 15.7 * _T, "NVIDIA V100 datasheet")),
    ("tpu v6 lite", PublishedPeaks("TPU v6e", 1640 * _G, 918 * _T, None,
                                   "cloud.google.com/tpu/docs/v6e")),
    ("tpu v5 lite", PublishedPeaks("TPU v5e", 819 * _G, 197 * _T, None,
                                   "cloud.google.com/tpu/docs/v5e")),
    ("tpu v5", PublishedPeaks("TPU v5p", 2765 * _G, 459 * _T, None,
                              "cloud.google.com/tpu/docs/v5p")),
    ("tpu v4", PublishedPeaks("TPU v4", 1228 * _G, 275 * _T, None,
                              "cloud.google.com/tpu/docs/v4")),
    ("tpu v3", PublishedPeaks("TPU v3 (one core)", 450 * _G, 61.5 * _T, None,
                              "cloud.google.com/tpu/docs/v3 (chip figures halved)")),
    ("tpu v2", PublishedPeaks("TPU v2 (one core)", 300 * _G, 22.5 * _T, None,
                              "cloud.google.com/tpu/docs/v2 (chip figures halved)")),
)


def published_peaks(device_kind: str) -> PublishedPeaks | None:
  """The table entry for ``device_kind`` (as JAX spells it), or None if unknown."""
  kind = device_kind.lower()
  for pattern, peaks in PUBLISHED_PEAKS:
    if pattern in kind:
      return peaks
  return None


def _best_seconds(call, repeats: int) -> float:
  """The fastest of ``repeats`` warm calls (STREAM's rule), after one warm-up (and compile)."""
  times, _, _ = timing.measure(call, warmup=1, repeats=repeats)
  return min(times) / 1e3


def last_level_cache_bytes() -> int | None:
  """The largest CPU cache the kernel reports (Linux sysfs), in bytes; None where unknown."""
  sizes = []
  for path in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*/size"):
    try:
      text = pathlib.Path(path).read_text().strip().upper()
    except OSError:
      continue
    unit = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
    digits = text.rstrip("KMG")
    if digits.isdigit():
      sizes.append(int(digits) * unit)
  return max(sizes) if sizes else None


def default_copy_mib() -> int:
  """The streaming size: 4x the last-level cache (STREAM's rule), at least 1 GiB.

  A smaller array stays partly cache-resident between passes and reads above memory
  bandwidth: a donated in-place update of 256 MiB on a host with a 480 MiB L3 did.
  """
  llc = last_level_cache_bytes() if jax.default_backend() == "cpu" else None
  return max(1024, -(-4 * llc // 2**20)) if llc else 1024


def _threaded_copyto(dst: np.ndarray, src: np.ndarray, threads: int) -> None:
  """``np.copyto`` split over ``threads`` contiguous chunks (numpy releases the GIL)."""
  bounds = np.linspace(0, src.size, threads + 1).astype(int)
  workers = [threading.Thread(target=np.copyto, args=(dst[a:b], src[a:b]))
             for a, b in zip(bounds[1:-1], bounds[2:])]
  for w in workers:
    w.start()
  np.copyto(dst[:bounds[1]], src[:bounds[1]])
  for w in workers:
    w.join()


def _check_pass(name: str, values, expected: float) -> None:
  """Fails loudly if a timed pass left the wrong values: it was elided or partial."""
  values = np.asarray(values)
  if not np.all(values == expected):
    raise RuntimeError(f"{name} left {values.tolist()} where every value must be {expected}: "
                       "the timed pass did not run over the whole array")


def measure_copy_bandwidth(mib: int | None = None, repeats: int = 5,
                           threads: int | None = None) -> dict:
  """Streaming bandwidths in bytes/s, each counting bytes read plus bytes written.

  Four ways of streaming ``mib`` MiB of float32, each the best of ``repeats`` passes after
  a warm-up, each checked afterwards (first, middle and last values) so a pass cannot
  have been elided:

  - 'copy_existing': ``np.copyto`` into a buffer that exists and is already touched, split
    over ``threads`` threads: STREAM's copy, the host's peak.
  - 'copy_fresh': a numpy copy into a new array per pass: adds the page faults of memory
    the allocator takes from the OS for each large block (glibc: ``mmap`` above 32 MiB).
  - 'jax_fresh': a jitted ``x * a + b`` (``a`` and ``b`` run-time scalars) into the new
    output buffer XLA:CPU allocates per call, what a jitted forward pass writes into.
  - 'jax_donated': a jitted, donated ``x + 1`` fed back, so each output reuses the input's
    pages. In place, it moves no write-allocate traffic, so it can exceed the copy.

  Args:
    mib: array size in MiB (default ``default_copy_mib()``, several times the caches).
    repeats: timed passes; the best is kept, as STREAM does.
    threads: copy threads (default: the CPUs this process may use).

  Returns:
    {'copy_existing_Bps', 'copy_fresh_Bps', 'jax_fresh_Bps', 'jax_donated_Bps', 'mib',
    'threads'}; the numpy ones are None off-CPU.
  """
  mib = default_copy_mib() if mib is None else mib
  if mib < 1:
    raise ValueError(f"copy size (={mib} MiB) must be at least 1")
  if repeats < 1:
    raise ValueError(f"repeats (={repeats}) must be at least 1")
  threads = usable_cpus() if threads is None else threads
  if threads < 1:
    raise ValueError(f"threads (={threads}) must be at least 1")
  n = mib * 2**20 // 4
  nbytes = 2 * 4 * n
  probe = np.array([0, n // 2, n - 1])
  out = {"copy_existing_Bps": None, "copy_fresh_Bps": None, "mib": mib, "threads": threads}

  if jax.default_backend() == "cpu":
    src = np.full((n,), 3.0, np.float32)
    dst = np.empty_like(src)
    dst.fill(0.0)  # touched: every page is present before the timed passes
    out["copy_existing_Bps"] = nbytes / _best_seconds(
        lambda: _threaded_copyto(dst, src, threads), repeats)
    _check_pass("copy into an existing buffer", dst[probe], 3.0)
    del dst
    fresh = [None]

    def copy_fresh():
      fresh[0] = None  # the previous copy is freed first, as a loop's old outputs are
      fresh[0] = src.copy()
    out["copy_fresh_Bps"] = nbytes / _best_seconds(copy_fresh, repeats)
    _check_pass("copy into a fresh buffer", fresh[0][probe], 3.0)
    del src, fresh

  affine = jax.jit(lambda x, a, b: x * a + b)
  x = jnp.full((n,), 3.0, jnp.float32)
  a, b = jnp.float32(2.0), jnp.float32(1.0)
  last = [None]

  def jax_fresh():
    last[0] = None
    last[0] = affine(x, a, b)
    return last[0]
  out["jax_fresh_Bps"] = nbytes / _best_seconds(jax_fresh, repeats)
  _check_pass("jitted x * a + b", last[0][probe], 7.0)
  del x, last

  # '+ 1' so XLA cannot elide the pass; donated so each output reuses the input's pages.
  step = jax.jit(lambda v: v + 1.0, donate_argnums=0)
  state = [jnp.zeros((n,), jnp.float32)]

  def jax_donated():
    state[0] = step(state[0])
    return state[0]
  out["jax_donated_Bps"] = nbytes / _best_seconds(jax_donated, repeats)
  _check_pass("donated x + 1", state[0][probe], float(1 + repeats))
  return out


def measure_matmul_flops(n: int, dtype: str = "float32", repeats: int = 3) -> float:
  """FLOP/s (2 n^3 per product) of an n x n x n jitted matmul, best of ``repeats``."""
  if n < 1:
    raise ValueError(f"matmul size (={n}) must be at least 1")
  ka, kb = jax.random.split(jax.random.PRNGKey(0))
  a = jax.random.normal(ka, (n, n), jnp.float32).astype(dtype)
  b = jax.random.normal(kb, (n, n), jnp.float32).astype(dtype)
  mm = jax.jit(jnp.matmul)
  return 2 * n**3 / _best_seconds(lambda: mm(a, b), repeats)


def default_matmul_size() -> int:
  """A matmul big enough to reach a device's compute peak, small enough to be quick."""
  return 2048 if jax.default_backend() == "cpu" else 8192


@functools.cache
def roofline(dtype: str = "float32", *, copy_mib: int | None = None,
             matmul_n: int | None = None) -> dict:
  """Peak bandwidth and FLOP/s for the default device and ``dtype``, with their source.

  Measures once per process and arguments (cached). On CPU the bandwidth peak is the
  numpy copy into an existing buffer (STREAM's copy) and the FLOP/s peak the jitted
  matmul; the other streaming rates are recorded beside it, because a jitted CPU
  computation writes into fresh buffers and cannot reach that peak while their first
  touches page-fault (``sepconv.hostmem``). On accelerators with a
  ``PUBLISHED_PEAKS`` entry the peaks are the published ones, the measurements kept
  beside them; elsewhere the best jitted streaming rate.

  Args:
    dtype: 'float32' or 'bfloat16': which FLOP/s peak applies.
    copy_mib: array size of the streaming measurements (default ``default_copy_mib()``).
    matmul_n: matmul size (default ``default_matmul_size()``).

  Returns:
    A flat dict for records: 'peak_bandwidth_Bps', 'peak_flops_per_s', 'peak_source',
    and the raw measurements ('measured_copy_existing_Bps', 'measured_copy_fresh_Bps',
    'measured_jax_fresh_Bps', 'measured_jax_donated_Bps', all bytes read + written per
    second; 'copy_mib', 'copy_threads', 'last_level_cache_bytes').
  """
  if dtype not in ("float32", "bfloat16"):
    raise ValueError(f"dtype (={dtype!r}) must be 'float32' or 'bfloat16'")
  matmul_n = matmul_n or default_matmul_size()
  device = jax.devices()[0]
  copy = measure_copy_bandwidth(copy_mib)
  matmul = measure_matmul_flops(matmul_n, dtype)
  on_cpu = device.platform == "cpu"
  out = {
      "platform": device.platform,
      "device_kind": device.device_kind,
      "measured_copy_existing_Bps": copy["copy_existing_Bps"],
      "measured_copy_fresh_Bps": copy["copy_fresh_Bps"],
      "measured_jax_fresh_Bps": copy["jax_fresh_Bps"],
      "measured_jax_donated_Bps": copy["jax_donated_Bps"],
      "measured_matmul_flops_per_s": matmul,
      "copy_mib": copy["mib"],
      "copy_threads": copy["threads"],
      "last_level_cache_bytes": last_level_cache_bytes() if on_cpu else None,
      "matmul_n": matmul_n,
      "peak_bandwidth_Bps": (copy["copy_existing_Bps"] if on_cpu
                             else max(copy["jax_fresh_Bps"], copy["jax_donated_Bps"])),
      "peak_flops_per_s": matmul,
      "peak_source": ("measured in this run: numpy copy into an existing buffer (STREAM copy), "
                      "jitted matmul" if on_cpu else
                      "measured in this run: best jitted streaming pass, jitted matmul"),
  }
  published = published_peaks(device.device_kind) if not on_cpu else None
  if published is not None:
    flops = published.bfloat16_flops if dtype == "bfloat16" else published.float32_flops
    out["peak_bandwidth_Bps"] = published.bandwidth_Bps
    out["peak_source"] = f"published: {published.name}, {published.source}"
    if flops is not None:
      out["peak_flops_per_s"] = flops
    else:
      out["peak_source"] += f" (no published {dtype} peak: FLOP/s measured)"
  return out
