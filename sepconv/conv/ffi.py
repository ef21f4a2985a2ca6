"""``impl='ffi'``: sepconv's own CPU convolution kernels, called through XLA's FFI.

XLA:CPU runs grouped convolutions on a slow per-group kernel and expands their weight
gradient densely; PyTorch's CPU convolutions are oneDNN's. The kernels in
``sepconv/conv/_ext`` (C++, built by the package's own build, see setup.py) compute the
forward, the input gradient and the kernel gradient of an NHWC x HWIO grouped convolution
directly, as implicit GEMMs per group with register tiles (output pixels x output-channel
vectors for the forward and input gradient, input channels x output-channel vectors for
the kernel gradient), padding read as zeros instead of materialised, the strided input
gradient phase by phase; depthwise convolutions (one input and one output channel per
group) as direct sums vectorised across channels, in tiles of output pixels that share
their taps; with the instruction set (AVX-512, AVX2+FMA, or plain C++) chosen at run time
from the CPU. Their parallel loops run on the thread pool XLA:CPU passes to FFI handlers,
the one that runs the program's other operations, whose threads are awake between
operations (``use_xla_pool(False)``: on threads of the extension's own, which must be woken
and then compete with XLA's for the cores). Side by side in one process, 2-core x86,
batch 32, 64x64: the MobileNet v1 x0.5 training step 0.92x the time on the own threads,
v2 0.94x, v1 with ``impl='ffi'`` 0.87x.

Supported: float32 on the CPU backend, any group count, strides, kernel dilation and
explicit padding (negative = cropping included); ``jit``, ``vmap`` (``ffi_call`` with
``vmap_method='broadcast_all'``: every operand gets the batch axes, each batch slice one
convolution) and reverse-mode ``grad`` (the plan executor's custom VJP uses ``ffi_input_grad``
and ``ffi_kernel_grad``). Not supported, and then ``ffi_support`` says why: bfloat16 and
other dtypes, other backends, forward-mode autodiff.

The extension is optional. ``status()`` says whether it can run and why not: not built
(no compiler at install time, or ``SEPCONV_BUILD_EXT=0``), disabled at run time
(``SEPCONV_DISABLE_EXT=1``), a jax without ``jax.ffi.ffi_call(vmap_method=...)``, or an
XLA FFI API version that the installed jaxlib does not accept (checked before anything is
registered: jaxlib refuses such handlers when its CPU backend starts, which would break
every JAX computation in the process). Environment: ``SEPCONV_FFI_LIBRARY`` loads another
build of the library; ``SEPCONV_FFI_NUM_THREADS`` (how many threads share a kernel's loop,
default the CPUs this process may use), ``SEPCONV_FFI_ISA`` ('avx512', 'avx2' or 'generic') and
``SEPCONV_FFI_HUGEPAGES=0`` (do not ask for transparent huge pages on large result buffers,
whose first-touch page faults otherwise cost about a third of a narrow-group forward) are
read by the library itself.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import hashlib
import importlib.machinery
import inspect
import os
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from sepconv.conv.geometry import ConvGeometry

TARGETS = {
    "forward": "sepconv_conv_forward",
    "input_grad": "sepconv_conv_input_grad",
    "kernel_grad": "sepconv_conv_kernel_grad",
}
ISAS = ("avx512", "avx2", "generic")
DISABLE_ENV = "SEPCONV_DISABLE_EXT"
LIBRARY_ENV = "SEPCONV_FFI_LIBRARY"
LIBRARY_STEM = "_sepconv_ffi"
_REGISTERED: set[str] = set()  # XLA keeps registrations for the life of the process


@dataclasses.dataclass(frozen=True)
class Status:
  """Whether the extension can run here.

  Attributes:
    reason: None when it can, else why not (the text ``ffi_support`` reports).
    path: the shared library found, if any.
    api_version: (major, minor) XLA FFI API version the library was built against.
    runtime_api_version: (major, minor) of the installed jaxlib's FFI headers.
    isa: instruction set of the kernels in use.
    threads: threads of the kernels' pool.
  """
  reason: str | None
  path: str | None = None
  api_version: tuple[int, int] | None = None
  runtime_api_version: tuple[int, int] | None = None
  isa: str | None = None
  threads: int | None = None


def _disabled() -> bool:
  return os.environ.get(DISABLE_ENV, "").strip().lower() in ("1", "true", "on", "yes")


def library_path() -> Path | None:
  """``$SEPCONV_FFI_LIBRARY``, else the built library next to the C++ sources, else None."""
  override = os.environ.get(LIBRARY_ENV)
  if override:
    return Path(override)
  folder = Path(__file__).resolve().parent / "_ext"
  for suffix in importlib.machinery.EXTENSION_SUFFIXES:
    path = folder / f"{LIBRARY_STEM}{suffix}"
    if path.is_file():
      return path
  return None


@functools.cache
def build_id() -> str | None:
  """A short hash of the extension's library (None: there is none). Measured choices
  between implementations are only as current as the kernels they timed: the autotune
  cache keys carry this (``sepconv.conv.tune_cache.device_key``)."""
  path = library_path()
  if path is None or not path.is_file():
    return None
  return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def runtime_api_version() -> tuple[int, int] | None:
  """The XLA FFI API version of the installed jaxlib, read from the headers it ships."""
  try:
    header = Path(jax.ffi.include_dir()) / "xla" / "ffi" / "api" / "c_api.h"
    text = header.read_text()
  except (AttributeError, OSError):
    return None
  major = re.search(r"#define\s+XLA_FFI_API_MAJOR\s+(\d+)", text)
  minor = re.search(r"#define\s+XLA_FFI_API_MINOR\s+(\d+)", text)
  if major is None or minor is None:
    return None
  return int(major.group(1)), int(minor.group(1))


def _jax_reason() -> str | None:
  """Why this jax cannot call the kernels, or None."""
  ffi = getattr(jax, "ffi", None)
  needed = ("ffi_call", "register_ffi_target", "pycapsule", "include_dir")
  if ffi is None or not all(hasattr(ffi, name) for name in needed):
    return f"jax (={jax.__version__}) has no jax.ffi with {', '.join(needed)}"
  if "vmap_method" not in inspect.signature(ffi.ffi_call).parameters:
    return f"jax (={jax.__version__}) has no ffi_call(vmap_method=...)"
  return None


def _self_test() -> str | None:
  """One small grouped convolution through the FFI against XLA's; None if they agree."""
  geom = ConvGeometry((1, 5, 6, 4), (3, 3, 2, 6), 2, (1, 2), ((1, 1), (2, 0)), (1, 1))
  rng = np.random.default_rng(0)
  x = rng.standard_normal(geom.in_shape).astype(np.float32)
  k = rng.standard_normal(geom.kernel_shape).astype(np.float32)
  try:
    with jax.ensure_compile_time_eval():
      got = np.asarray(ffi_forward(jnp.asarray(x), jnp.asarray(k), geom, check=False))
      want = np.asarray(lax.conv_general_dilated(
          x, k, geom.strides, geom.pads, rhs_dilation=geom.dilation,
          dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=geom.groups,
          precision=lax.Precision.HIGHEST))
  except Exception as e:  # noqa: BLE001 (any failure means the kernels cannot be used)
    return f"self-test failed ({type(e).__name__}: {e})"
  err = float(np.abs(got - want).max())
  if not err < 1e-4:
    return f"self-test disagrees with XLA (max error {err:.3g})"
  return None


@functools.cache
def status() -> Status:
  """Loads, checks and registers the extension once per process (``status.cache_clear()``
  re-checks, e.g. after changing the environment in a test)."""
  if _disabled():
    return Status(f"extension disabled: {DISABLE_ENV}={os.environ[DISABLE_ENV]}")
  path = library_path()
  if path is None:
    return Status("extension not built: no sepconv/conv/_ext/_sepconv_ffi library (install "
                  "with a C++17 compiler, SEPCONV_BUILD_EXT unset or 1)")
  if not path.is_file():
    return Status(f"extension not built: {LIBRARY_ENV} (={str(path)!r}) is not a file")
  reason = _jax_reason()
  if reason is not None:
    return Status(reason, str(path))
  try:
    lib = ctypes.CDLL(str(path))
    lib.sepconv_ffi_isa.restype = ctypes.c_char_p
    built = divmod(int(lib.sepconv_ffi_api_version()), 1000)
    handlers = {computation: getattr(lib, name) for computation, name in TARGETS.items()}
  except (OSError, AttributeError) as e:
    return Status(f"extension not loadable: {path} ({e})", str(path))
  runtime = runtime_api_version()
  if runtime is None:
    return Status("cannot read the installed jaxlib's XLA FFI API version from "
                  "jax.ffi.include_dir(): not registering handlers it may refuse",
                  str(path), built)
  if built[0] != runtime[0] or built[1] > runtime[1]:
    return Status(f"extension built for XLA FFI API {built[0]}.{built[1]}, newer than the "
                  f"installed jaxlib {jax.lib.__version__}'s {runtime[0]}.{runtime[1]}: rebuild "
                  "it against this jaxlib's headers", str(path), built, runtime)
  try:
    for computation, handler in handlers.items():
      if TARGETS[computation] not in _REGISTERED:
        jax.ffi.register_ffi_target(TARGETS[computation], jax.ffi.pycapsule(handler), platform="cpu")
        _REGISTERED.add(TARGETS[computation])
  except Exception as e:  # noqa: BLE001
    return Status(f"registering the FFI handlers failed ({e})", str(path), built, runtime)
  isa, threads = lib.sepconv_ffi_isa().decode(), int(lib.sepconv_ffi_num_threads())
  reason = _self_test()
  return Status(reason, str(path), built, runtime, isa, threads)


def _runnable_library() -> ctypes.CDLL:
  """The extension's library, for its setters; ValueError if the kernels cannot run."""
  st = status()
  if st.reason is not None:
    raise ValueError(f"the ffi kernels cannot run: {st.reason}")
  return ctypes.CDLL(st.path)


def set_isa(isa: str) -> None:
  """Runs the kernels on instruction set ``isa`` from now on (tests, benchmarks)."""
  if isa not in ISAS:
    raise ValueError(f"isa (={isa!r}) must be one of {ISAS}")
  if _runnable_library().sepconv_ffi_set_isa(isa.encode()) != 0:
    raise ValueError(f"isa (={isa!r}) is not supported by this CPU")


def use_xla_pool(on: bool) -> bool:
  """Whether the kernels' parallel loops run on XLA's intra-op thread pool (the default)
  or on the extension's own threads from now on (tests, benchmarks); the previous setting."""
  return bool(_runnable_library().sepconv_ffi_use_xla_pool(int(bool(on))))


def active_isa() -> str | None:
  """The instruction set the kernels run on now, None if the extension cannot run."""
  st = status()
  if st.reason is not None:
    return None
  lib = ctypes.CDLL(st.path)
  lib.sepconv_ffi_isa.restype = ctypes.c_char_p
  return lib.sepconv_ffi_isa().decode()


def ffi_support(geom: ConvGeometry) -> str | None:
  """None if the ffi kernels run ``geom`` here, else why not."""
  reason = status().reason
  if reason is not None:
    return reason
  backend = jax.default_backend()
  if backend != "cpu":
    return f"backend (={backend!r}) must be 'cpu': the ffi kernels are CPU code"
  if geom.dtype != "float32":
    return f"dtype (={geom.dtype}) must be float32 for the ffi kernels"
  return None


def _attrs(geom: ConvGeometry) -> dict:
  (pt, pb), (pl, pr) = geom.pads
  values = dict(groups=geom.groups, stride_h=geom.strides[0], stride_w=geom.strides[1],
                pad_top=pt, pad_bottom=pb, pad_left=pl, pad_right=pr,
                dilation_h=geom.dilation[0], dilation_w=geom.dilation[1])
  return {name: np.int64(v) for name, v in values.items()}


def _call(computation: str, shape, geom: ConvGeometry, a: jax.Array, b: jax.Array, check: bool):
  if check:
    reason = ffi_support(geom)
    if reason is not None:
      raise ValueError(f"impl (='ffi') does not support this convolution: {reason}")
  fn = jax.ffi.ffi_call(TARGETS[computation], jax.ShapeDtypeStruct(tuple(shape), jnp.float32),
                        vmap_method="broadcast_all")
  return fn(a, b, **_attrs(geom))


def ffi_forward(x: jax.Array, kernel: jax.Array, geom: ConvGeometry, check: bool = True):
  """y = conv(x, kernel) by the ffi kernels."""
  return _call("forward", geom.out_shape, geom, x, kernel, check)


def ffi_input_grad(dy: jax.Array, kernel: jax.Array, geom: ConvGeometry, check: bool = True):
  """dx, the transpose of the forward in x, by the ffi kernels."""
  return _call("input_grad", geom.in_shape, geom, dy, kernel, check)


def ffi_kernel_grad(x: jax.Array, dy: jax.Array, geom: ConvGeometry, check: bool = True):
  """dkernel, the transpose of the forward in the kernel, by the ffi kernels."""
  return _call("kernel_grad", geom.kernel_shape, geom, x, dy, check)
