"""The policy behind ``impl="auto"``: measure once per backend, shape and dtype, remember on disk.

What is chosen: three implementations per convolution, one for the forward, one for the
input gradient and one for the kernel gradient, each the fastest measured among the
implementations that support the configuration. The forward is chosen when
``grouped_conv`` is called; the two gradients only when a backward pass is traced (the
custom VJP rule asks for them then), so inference never pays for measuring backward.

When it is measured: at trace time. ``grouped_conv`` usually runs inside a jitted Flax
module, where the arrays are abstract, but their shape and dtype are known, which is all
a measurement needs: it runs each candidate, jitted, on random arrays of that shape in a
thread of its own, outside every trace (compiled first, then a warm call and up to three
timed calls through ``sepconv.timing.measure``, fewer when a candidate is already clearly
slower than the best), on the default device. A candidate that fails there is dropped
with a warning; if every one fails, 'xla' is used. Candidates known to take minutes at
training sizes are not run (``candidates``).
The native 'xla' is kept unless a candidate beats it by ``MARGIN`` (noise on a busy host).
Results are kept in memory and in a JSON file keyed by backend, device kind, jax/jaxlib
versions and the full ``ConvGeometry`` (shapes, groups, strides, padding, dilation, dtype).
A nested ``grouped_conv`` under ``vmap`` sees (and measures) the per-example shape.

Cache file: ``$SEPCONV_CACHE_DIR/autotune.json``, default ``~/.cache/sepconv/autotune.json``.
Writes are atomic (temporary file plus ``os.replace``) and merge with entries other
processes wrote meanwhile. A file that cannot be parsed is set aside with a warning and
rebuilt, never fatal.

``choose_among`` is the generic chooser (cache, then measurement or a default) and
``choose`` applies it to one computation of one convolution.

When measuring is off (``SEPCONV_AUTOTUNE=0``), and for convolutions under
``MIN_MEASURE_MACS`` multiply-adds (microseconds whichever way they run), choices come
from ``heuristic``, a fixed table written from measurements on a 2-core x86 CPU (see its
docstring); choices already in the cache are still used.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from sepconv import timing, validate
from sepconv.conv import shift
from sepconv.conv.geometry import ConvGeometry
from sepconv.conv.table import COMPUTATIONS, IMPL_TABLE, computation_fn, supported

REFERENCE = "xla"
# A candidate must beat the native conv by this fraction to be chosen over it, so noise in
# a few timed calls on a busy host cannot make auto pick something no faster than native.
MARGIN = 0.05
# Below this many multiply-adds a convolution takes microseconds whichever way it runs:
# auto takes the heuristic instead of spending seconds compiling candidates.
MIN_MEASURE_MACS = 1 << 22
CACHE_VERSION = 1
_MEMORY: dict[str, dict] = {}
# Wall time this process spent measuring candidates (a run's time budget reads it).
MEASURING = {"seconds": 0.0, "measurements": 0}


# ---------------------------------------------------------------- heuristic


def heuristic(geom: ConvGeometry, computation: str, backend: str | None = None) -> str:
  """The implementation for ``computation`` when nothing is measured.

  CPU (measured on a 2-core x86 host, float32, 3x3 on 56x56x128 -> 128, batch 32):
    * ``shift`` wins every computation wherever it applies (depthwise, depth multipliers, up
      to 8 channels per group): 10-40x the native forward, and the native weight
      gradient of a grouped conv is expanded densely by XLA:CPU (minutes); except the
      weight gradient at 4-8 channels per group, where ``supergroup`` is 1.4-2.5x faster;
    * 1x1 kernels: the matmul path forward;
    * wider groups (G > 1): ``supergroup`` (dense convolutions over channel blocks) for
      all three stages, except the weight gradient from 64 channels per group on,
      where ``im2col`` (chunked ``patches^T @ dy``) is 1.4x faster, and 3.6x faster
      than native for dense convolutions;
    * dense (G = 1): native forward and input gradient.
  CPU with the C++ extension built (``ffi``), from 8 channels per group to dense, except
  the 1x1 forward: ``ffi`` for all three computations (1.1-2x PyTorch's oneDNN in forward +
  backward on the reference layer, forward at parity; 2.8x XLA's dense forward + backward).
  CPU, small convolutions (under ``MIN_MEASURE_MACS``, never measured; from training
  steps of the granularity grid's MobileNet on 8x8 digits, batch 32, where per-op
  overhead and compile time dominate): ``shift`` for depthwise, ``supergroup`` for every
  other grouped conv (the unrolled shift sums took 2-6x longer to compile and ran
  slower from 2 channels per group on; native's grouped weight gradient is 10-70x
  slower), and native for dense convolutions (im2col and the matmul path lose there).
  GPU and TPU: native everywhere (cuDNN / the TPU compiler handle grouped convs; the
  custom rules here are untested on those backends, and measuring decides there).
  """
  backend = backend or jax.default_backend()
  if backend != "cpu":
    return "xla"
  if geom.macs < MIN_MEASURE_MACS:
    if geom.groups == 1:
      return "xla"
    return "shift" if geom.group_in == 1 and shift.support(geom) is None else "supergroup"
  if (geom.group_in >= 8 and not (geom.is_pointwise and computation == "forward")
      and IMPL_TABLE["ffi"].support(geom) is None):
    return "ffi"
  if geom.is_pointwise and computation == "forward":
    return "pointwise"
  if shift.support(geom) is None:
    # Its weight gradient unrolls ci*co products per tap: past 2 channels per group
    # (with G > 1) the dense blocks are faster.
    if computation == "kernel_grad" and geom.group_in >= 4 and geom.groups > 1:
      return "supergroup"
    return "shift"
  if computation == "kernel_grad" and geom.group_in >= 64:
    return "im2col"
  if geom.groups == 1:
    return "xla"
  return "supergroup"


def candidates(geom: ConvGeometry, computation: str, backend: str | None = None) -> list[str]:
  """Implementations worth measuring for ``computation``: supported and not known hopeless.

  Left out on CPU, because one call can take minutes at training sizes: the native
  weight gradient of a grouped conv (G > 1), which XLA:CPU expands into a dense
  convolution with a mask (2 minutes for one 3x3, 56x56x128, 2-channel-group weight
  gradient at batch 32 on a 2-core host, where 'shift' takes 0.1 s); the weight
  gradient of 'xla_noynn' (XLA's Eigen weight gradient: a minute even for G = 1); and
  ``dense`` past 8 groups for the weight gradient and past 32 otherwise (G times the
  arithmetic). 'dense' and 'supergroup' are the native conv itself when G = 1.
  Otherwise 'xla', the reference, is always measured. The heuristic's choice comes
  first, so slow candidates are cut short early.
  """
  backend = backend or jax.default_backend()
  names = supported(geom)
  drop = set()
  if geom.groups == 1:
    drop.update(("dense", "supergroup"))  # the same dense conv as xla
  if geom.group_in < 16:
    drop.add("im2col")  # tiny matrix products: shift or supergroup always win
  if geom.groups > (8 if computation == "kernel_grad" else 32):
    drop.add("dense")
  if backend == "cpu" and computation == "kernel_grad":
    drop.add("xla_noynn")  # Eigen's weight gradient: a minute even when G = 1
    if geom.groups > 1:
      drop.add("xla")
  if backend != "cpu":
    drop.add("xla_noynn")  # the YNNPACK opt-out only means something on CPU
  names = [n for n in names if n not in drop]
  first = heuristic(geom, computation, backend)
  return sorted(names, key=lambda n: n != first)


# ---------------------------------------------------------------- cache


def cache_path() -> Path:
  """``$SEPCONV_CACHE_DIR/autotune.json``, else ``~/.cache/sepconv/autotune.json``."""
  root = os.environ.get("SEPCONV_CACHE_DIR")
  base = Path(root) if root else Path.home() / ".cache" / "sepconv"
  return base / "autotune.json"


def measuring_enabled() -> bool:
  """False when ``SEPCONV_AUTOTUNE`` is '0' (or 'false'/'off')."""
  return os.environ.get("SEPCONV_AUTOTUNE", "1").strip().lower() not in ("0", "false", "off", "no")


def device_key() -> str:
  """Backend, device kind and versions: what a measurement is valid for."""
  device = jax.devices()[0]
  versions = f"jax-{jax.__version__}|jaxlib-{jax.lib.__version__}"
  return f"{device.platform}|{device.device_kind}|{versions}"


def entry_key(geom: ConvGeometry, computation: str) -> str:
  return f"{device_key()}|{geom.key()}|{computation}"


def cache_summary() -> dict:
  """Where the cache file is, and how many choices it holds for this device and in all."""
  path = cache_path()
  entries = _read_file(path)
  prefix = device_key() + "|"
  return {"path": str(path), "exists": path.exists(), "entries": len(entries),
          "entries_for_this_device": sum(key.startswith(prefix) for key in entries),
          "device_key": device_key(), "measuring": measuring_enabled()}


def _read_file(path: Path) -> dict:
  """Entries stored at ``path``; an unreadable file is set aside with a warning."""
  try:
    text = path.read_text()
  except FileNotFoundError:
    return {}
  except OSError as e:
    warnings.warn(f"sepconv autotune cache {path} unreadable ({e}); measuring afresh")
    return {}
  try:
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
      raise ValueError(f"version (={data.get('version') if isinstance(data, dict) else None}) "
                       f"must be {CACHE_VERSION}")
    entries = data["entries"]
    if not isinstance(entries, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("choice"), str) for v in entries.values()):
      raise ValueError("entries must map keys to {'choice': name, ...}")
    return entries
  except (ValueError, KeyError, TypeError) as e:
    warnings.warn(f"sepconv autotune cache {path} is corrupt ({e}); rebuilding it")
    try:
      os.replace(path, path.with_suffix(".corrupt"))
    except OSError:
      pass
    return {}


def _write_entry(key: str, entry: dict) -> None:
  """Merges one entry into the cache file atomically; failures only warn."""
  path = cache_path()
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    entries = _read_file(path)
    entries[key] = entry
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".autotune.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
      json.dump({"version": CACHE_VERSION, "entries": entries}, f, indent=1, sort_keys=True)
    os.replace(tmp, path)
  except OSError as e:
    warnings.warn(f"sepconv autotune cache {path} not written ({e})")


def lookup(geom: ConvGeometry, computation: str) -> dict | None:
  """The cached entry for ``geom`` and ``computation`` (memory, then disk), or None."""
  key = entry_key(geom, computation)
  return _MEMORY.get(key) or _read_file(cache_path()).get(key)


def clear_memory_cache() -> None:
  """Forgets in-memory choices (the file stays), as a new process would."""
  _MEMORY.clear()


# ---------------------------------------------------------------- measuring


def _timed(fns: dict, args, repeats: int) -> dict[str, float]:
  """Median wall ms of each jitted fn on ``args`` (compiled first, then one warm call).

  A candidate slower than 3x the best so far stops at that call: it cannot be chosen. A
  candidate that fails to compile or run here (a primitive this jax cannot evaluate, an
  out-of-memory on this device) is dropped with one warning naming it and the reason.
  """
  times: dict[str, float] = {}
  for name, fn in fns.items():
    try:
      compiled = fn.lower(*args).compile()
      cutoff = 3 * min(times.values()) if times else None
      runs, _, _ = timing.measure(lambda: compiled(*args), warmup=1, repeats=repeats,
                                  cutoff_ms=cutoff)
    except Exception as e:  # noqa: BLE001 (any failure of a candidate only removes it)
      warnings.warn(f"sepconv auto: candidate {name!r} dropped, it failed on "
                    f"{jax.default_backend()} ({type(e).__name__}: {_first_line(e)})",
                    stacklevel=2)
      continue
    times[name] = float(np.median(runs))
  return times


def _first_line(error: Exception) -> str:
  text = str(error).strip()
  return text.splitlines()[0][:200] if text else "no message"


def _random_arrays(dtype, *shapes):
  """Concrete standard-normal arrays on the default device (no denormals in the sums)."""
  rng = np.random.default_rng(0)
  return tuple(jax.device_put(jnp.asarray(rng.standard_normal(shape, dtype=np.float32),
                                          jnp.dtype(dtype))) for shape in shapes)


def _outside_any_trace(fn):
  """``fn()`` run in a fresh thread, where no jit, vmap, grad or scan of ours is tracing.

  JAX's trace state is per thread: measuring here, while the caller's trace waits, runs
  every candidate eagerly on concrete arrays whatever encloses the ``grouped_conv`` call
  and whichever jax version this is (``ensure_compile_time_eval`` cannot evaluate every
  primitive everywhere, e.g. a ``lax.scan`` on jax 0.7).
  """
  with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
    return pool.submit(fn).result()


def measure(geom: ConvGeometry, computation: str, names: list[str] | None = None,
            repeats: int = 3) -> dict[str, float]:
  """Median wall milliseconds of each candidate for ``computation``, measured now, eagerly.

  Candidates that fail here are left out (with a warning), so the result may be empty.
  """
  names = candidates(geom, computation) if names is None else names
  start = time.perf_counter()

  def run():
    args = _random_arrays(geom.dtype, geom.in_shape, geom.kernel_shape, geom.out_shape)
    return _timed({n: jax.jit(computation_fn(n, computation, geom)) for n in names}, args,
                  repeats)
  try:
    return _outside_any_trace(run)
  finally:
    MEASURING["seconds"] += time.perf_counter() - start
    MEASURING["measurements"] += 1


def choose_among(key: str, valid: list[str], default: str, run_measure, macs: int) -> str:
  """The generic chooser: cached choice for ``key``; else measured, or ``default``.

  Args:
    key: the cache key (device, geometry, computation).
    valid: names that may be chosen.
    default: the choice when nothing is measured.
    run_measure: () -> {name: median ms}, called only when a measurement is due.
    macs: multiply-adds of the work; below ``MIN_MEASURE_MACS`` nothing is measured.
  """
  entry = _MEMORY.get(key)
  if entry is None:
    entry = _read_file(cache_path()).get(key)
  if entry is not None and entry["choice"] in valid:
    _MEMORY[key] = entry
    return entry["choice"]
  if len(valid) == 1:
    return valid[0]
  if not measuring_enabled() or macs < MIN_MEASURE_MACS:
    return default
  times = run_measure()
  if not times:  # every candidate failed here: the native convolution is always correct
    return REFERENCE if REFERENCE in valid else default
  choice = min(times, key=times.get)
  if REFERENCE in times and times[choice] > (1 - MARGIN) * times[REFERENCE]:
    choice = REFERENCE  # within noise of native: keep native
  entry = {"choice": choice, "times_ms": times,
           "measured": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
  _MEMORY[key] = entry
  _write_entry(key, entry)
  return choice


def choose(geom: ConvGeometry, computation: str) -> str:
  """The implementation ``auto`` uses for ``computation`` of ``geom`` (a replayed one first)."""
  replayed = _REPLAY.get(f"{geom.key()}|{computation}")
  if replayed is not None:
    reason = "not an implementation" if replayed not in IMPL_TABLE else IMPL_TABLE[replayed].support(geom)
    if reason is not None:
      raise ValueError(f"replayed plan (={replayed!r}) for {computation} of {geom.key()} cannot "
                       f"run here: {reason}")
    return replayed
  return choose_among(entry_key(geom, computation), supported(geom),
                      heuristic(geom, computation), lambda: measure(geom, computation),
                      geom.macs)


# ---------------------------------------------------------------- plans: record and replay

_REPLAY: dict[str, str] = {}


def plan_record(geoms) -> dict[str, dict[str, str]]:
  """What ``auto`` runs for each geometry: {geometry key: {computation: impl}}.

  Recorded after a run has traced (and so chosen) them: nothing is measured again.
  """
  return {g.key(): {c: choose(g, c) for c in COMPUTATIONS} for g in geoms}


@contextlib.contextmanager
def replaying(plans: dict[str, dict[str, str]] | None):
  """Within this block, ``auto`` runs ``plans`` (``plan_record``'s form) where they apply.

  Replaying a reference's plans on the same software and CPU reproduces its numbers bit
  for bit: which implementation computes a sum decides its rounding. Geometries the
  plans do not name are chosen as usual.
  """
  saved = dict(_REPLAY)
  for key, choices in (plans or {}).items():
    for computation, impl in choices.items():
      validate.one_of(computation, "computation", COMPUTATIONS)
      _REPLAY[f"{key}|{computation}"] = impl
  try:
    yield
  finally:
    _REPLAY.clear()
    _REPLAY.update(saved)
