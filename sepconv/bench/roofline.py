"""Roofline peaks: published numbers for accelerators, measured numbers for the host.

A benchmark's achieved FLOP/s and bytes/s mean little alone; they are reported as
fractions of the device's peaks. On GPU and TPU the peaks are the vendor's published
figures, looked up by JAX's ``device_kind``. A CPU has no useful published figure, so
its peaks are measured in the same run: a STREAM-like streaming pass over a large
array (bytes read + bytes written, best of several) and a large matmul's FLOP/s in the
benchmark's dtype. Both measurements are also taken on accelerators and recorded beside
the published figures, as a sanity check of the table.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from sepconv import timing

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


def measure_copy_bandwidth(mib: int = 256, repeats: int = 5) -> dict:
  """STREAM-like bandwidth in bytes/s, counting bytes read plus bytes written.

  Args:
    mib: size of the array streamed, in MiB (f32); keep it well above the caches.
    repeats: timed passes; the best is kept, as STREAM does.

  Returns:
    {'jax_Bps': a jitted ``x + 1`` on the default device, 'numpy_Bps': ``np.copyto``
    on the host (None off-CPU)}.
  """
  if mib < 1:
    raise ValueError(f"copy size (={mib} MiB) must be at least 1")
  n = mib * 2**20 // 4
  # '+ 1' so XLA cannot elide the pass; donated so each output reuses the input's pages
  # (a fresh buffer per call would time the kernel's page faults, not the memory).
  step = jax.jit(lambda a: a + 1.0, donate_argnums=0)
  state = [jnp.zeros((n,), jnp.float32)]

  def call():
    state[0] = step(state[0])
    return state[0]
  out = {"jax_Bps": 2 * 4 * n / _best_seconds(call, repeats), "numpy_Bps": None}
  if jax.default_backend() == "cpu":
    src = np.ones((n,), np.float32)
    dst = np.empty_like(src)
    out["numpy_Bps"] = 2 * 4 * n / _best_seconds(lambda: np.copyto(dst, src), repeats)
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
def roofline(dtype: str = "float32", *, copy_mib: int = 256, matmul_n: int | None = None) -> dict:
  """Peak bandwidth and FLOP/s for the default device and ``dtype``, with their source.

  Measures once per process and arguments (cached). On CPU the peaks are the measured
  ones; on accelerators with a ``PUBLISHED_PEAKS`` entry the published ones, with the
  measurements kept beside them.

  Args:
    dtype: 'float32' or 'bfloat16': which FLOP/s peak applies.
    copy_mib: array size of the streaming-bandwidth measurement.
    matmul_n: matmul size (default ``default_matmul_size()``).

  Returns:
    A flat dict for records: 'peak_bandwidth_Bps', 'peak_flops_per_s', 'peak_source',
    and the raw measurements.
  """
  if dtype not in ("float32", "bfloat16"):
    raise ValueError(f"dtype (={dtype!r}) must be 'float32' or 'bfloat16'")
  matmul_n = matmul_n or default_matmul_size()
  device = jax.devices()[0]
  copy = measure_copy_bandwidth(copy_mib)
  matmul = measure_matmul_flops(matmul_n, dtype)
  measured_bw = max(v for v in copy.values() if v is not None)
  out = {
      "platform": device.platform,
      "device_kind": device.device_kind,
      "measured_copy_jax_Bps": copy["jax_Bps"],
      "measured_copy_numpy_Bps": copy["numpy_Bps"],
      "measured_matmul_flops_per_s": matmul,
      "copy_mib": copy_mib,
      "matmul_n": matmul_n,
      "peak_bandwidth_Bps": measured_bw,
      "peak_flops_per_s": matmul,
      "peak_source": "measured in this run: copy best of jax and numpy, jitted matmul",
  }
  published = published_peaks(device.device_kind) if device.platform != "cpu" else None
  if published is not None:
    flops = published.bfloat16_flops if dtype == "bfloat16" else published.float32_flops
    out["peak_bandwidth_Bps"] = published.bandwidth_Bps
    out["peak_source"] = f"published: {published.name}, {published.source}"
    if flops is not None:
      out["peak_flops_per_s"] = flops
    else:
      out["peak_source"] += f" (no published {dtype} peak: FLOP/s measured)"
  return out
