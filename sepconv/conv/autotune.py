"""``impl="auto"``: measure once per backend, shape and dtype, remember on disk.

What is chosen: three implementations per convolution, one for the forward, one for the
input gradient and one for the kernel gradient, each the fastest measured among the
implementations that support the configuration. The forward is chosen when
``grouped_conv`` is called; the two gradients only when a backward pass is traced (the
custom VJP rule asks for them then), so inference never pays for measuring backward.

When it is measured: at trace time. ``grouped_conv`` usually runs inside a jitted Flax
module, where the arrays are abstract, but their shape and dtype are known, which is all
a measurement needs: it runs each candidate, jitted, on random arrays of that shape under
``jax.ensure_compile_time_eval`` (a compiling call, a warm call, then up to three timed
calls, fewer when a candidate is already clearly slower than the best), on the default
device. Candidates known to take minutes at training sizes are not run (``candidates``).
The native 'xla' is kept unless a candidate beats it by ``MARGIN`` (noise on a busy host).
Results are kept in memory and in a JSON file keyed by backend, device kind, jax/jaxlib
versions and the full ``ConvSpec`` (shapes, groups, strides, padding, dilation, dtype).
A nested ``grouped_conv`` under ``vmap`` sees (and measures) the per-example shape.

Cache file: ``$SEPCONV_CACHE_DIR/autotune.json``, default ``~/.cache/sepconv/autotune.json``.
Writes are atomic (temporary file plus ``os.replace``) and merge with entries other
processes wrote meanwhile. A file that cannot be parsed is set aside with a warning and
rebuilt, never fatal.

When measuring is off (``SEPCONV_AUTOTUNE=0``), and for convolutions under
``MIN_MEASURE_MACS`` multiply-adds (microseconds whichever way they run), choices come
from ``heuristic``, a fixed table written from measurements on a 2-core x86 CPU (see its
docstring); choices already in the cache are still used.
"""

from __future__ import annotations

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

from sepconv.conv import registry
from sepconv.conv.registry import IMPL_TABLE, Plan
from sepconv.conv.spec import ConvSpec

STAGES = ("forward", "input_grad", "kernel_grad")
REFERENCE = "xla"
# A candidate must beat the native conv by this fraction to be chosen over it, so noise in
# a few timed calls on a busy host cannot make auto pick something no faster than native.
MARGIN = 0.05
# Below this many multiply-adds a convolution takes microseconds whichever way it runs:
# auto takes the heuristic instead of spending seconds compiling candidates.
MIN_MEASURE_MACS = 1 << 22
CACHE_VERSION = 1
_MEMORY: dict[str, dict] = {}


# ---------------------------------------------------------------- heuristic


def heuristic(spec: ConvSpec, stage: str, backend: str | None = None) -> str:
  """The implementation for ``stage`` when nothing is measured.

  CPU (measured on a 2-core x86 host, float32, 3x3 on 56x56x128 -> 128, batch 32):
    * ``shift`` wins every stage wherever it applies (depthwise, depth multipliers, up
      to 8 channels per group): 10-40x the native forward, and the native weight
      gradient of a grouped conv is expanded densely by XLA:CPU (minutes); except the
      weight gradient at 4-8 channels per group, where ``supergroup`` is 1.4-2.5x faster;
    * 1x1 kernels: the matmul path forward;
    * wider groups (G > 1): ``supergroup`` (dense convolutions over channel blocks) for
      all three stages, except the weight gradient from 64 channels per group on,
      where ``im2col`` (chunked ``patches^T @ dy``) is 1.4x faster, and 3.6x faster
      than native for dense convolutions;
    * dense (G = 1): native forward and input gradient.
  GPU and TPU: native everywhere (cuDNN / the TPU compiler handle grouped convs; the
  custom rules here are untested on those backends, and measuring decides there).
  """
  backend = backend or jax.default_backend()
  if backend != "cpu":
    return "xla"
  if spec.is_pointwise and stage == "forward":
    return "pointwise"
  if registry.IMPL_TABLE["shift"].support(spec) is None:
    # Its weight gradient unrolls ci*co products per tap: past 2 channels per group
    # (with G > 1) the dense blocks are faster.
    if stage == "kernel_grad" and spec.group_in >= 4 and spec.groups > 1:
      return "supergroup"
    return "shift"
  if stage == "kernel_grad" and spec.group_in >= 64:
    return "im2col"
  if spec.groups == 1:
    return "xla"
  return "supergroup"


def candidates(spec: ConvSpec, stage: str, backend: str | None = None) -> list[str]:
  """Implementations worth measuring for ``stage``: supported and not known hopeless.

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
  names = [n for n, impl in IMPL_TABLE.items() if impl.support(spec) is None]
  drop = set()
  if spec.groups == 1:
    drop.update(("dense", "supergroup"))  # the same dense conv as xla
  if spec.group_in < 16:
    drop.add("im2col")  # tiny matrix products: shift or supergroup always win
  if spec.groups > (8 if stage == "kernel_grad" else 32):
    drop.add("dense")
  if backend == "cpu" and stage == "kernel_grad":
    drop.add("xla_noynn")  # Eigen's weight gradient: a minute even when G = 1
    if spec.groups > 1:
      drop.add("xla")
  if backend != "cpu":
    drop.add("xla_noynn")  # the YNNPACK opt-out only means something on CPU
  names = [n for n in names if n not in drop]
  first = heuristic(spec, stage, backend)
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


def entry_key(spec: ConvSpec, stage: str) -> str:
  return f"{device_key()}|{spec.key()}|{stage}"


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


def lookup(spec: ConvSpec, stage: str) -> dict | None:
  """The cached entry for ``spec`` and ``stage`` (memory, then disk), or None."""
  key = entry_key(spec, stage)
  return _MEMORY.get(key) or _read_file(cache_path()).get(key)


def clear_memory_cache() -> None:
  """Forgets in-memory choices (the file stays), as a new process would."""
  _MEMORY.clear()


# ---------------------------------------------------------------- measuring


def _timed(fns: dict, args, repeats: int) -> dict[str, float]:
  """Median wall ms of each jitted fn on ``args``.

  Each candidate gets a compiling call and a warm call; one whose warm call is already 5x
  the best so far stops there, and timed calls stop early past 3x the best.
  """
  times: dict[str, float] = {}
  for name, fn in fns.items():
    jax.block_until_ready(fn(*args))  # compile
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))  # warm
    warm_ms = (time.perf_counter() - start) * 1e3
    if times and warm_ms > 5 * min(times.values()):
      times[name] = warm_ms  # clearly slower: no more of its calls
      continue
    runs = []
    for _ in range(repeats):
      start = time.perf_counter()
      jax.block_until_ready(fn(*args))
      runs.append((time.perf_counter() - start) * 1e3)
      if times and runs[-1] > 3 * min(times.values()):
        break
    times[name] = float(np.median(runs))
  return times


def _stage_fn(name: str, stage: str, spec: ConvSpec):
  if stage == "forward":
    return jax.jit(lambda x, k, dy: IMPL_TABLE[name].forward(x, k, spec))
  if stage == "input_grad":
    return jax.jit(lambda x, k, dy: registry.input_grad(name, x, k, dy, spec))
  return jax.jit(lambda x, k, dy: registry.kernel_grad(name, x, k, dy, spec))


def _random_arrays(dtype, *shapes):
  """Concrete standard-normal arrays on the default device (no denormals in the sums)."""
  rng = np.random.default_rng(0)
  return tuple(jax.device_put(jnp.asarray(rng.standard_normal(shape, dtype=np.float32),
                                          jnp.dtype(dtype))) for shape in shapes)


def measure(spec: ConvSpec, stage: str, names: list[str] | None = None,
            repeats: int = 3) -> dict[str, float]:
  """Median wall milliseconds of each candidate for ``stage``, measured now, eagerly."""
  names = candidates(spec, stage) if names is None else names
  with jax.ensure_compile_time_eval():
    args = _random_arrays(spec.dtype, spec.in_shape, spec.kernel_shape, spec.out_shape)
    return _timed({n: _stage_fn(n, stage, spec) for n in names}, args, repeats)


def _choose(key: str, valid: list[str], default: str, run_measure, macs: int) -> str:
  """Cached choice for ``key``; else measured (``run_measure() -> times``) or ``default``."""
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
  choice = min(times, key=times.get)
  if REFERENCE in times and times[choice] > (1 - MARGIN) * times[REFERENCE]:
    choice = REFERENCE  # within noise of native: keep native
  entry = {"choice": choice, "times_ms": times,
           "measured": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
  _MEMORY[key] = entry
  _write_entry(key, entry)
  return choice


def choose_stage(spec: ConvSpec, stage: str) -> str:
  """The implementation ``auto`` uses for ``stage`` of ``spec``."""
  valid = [n for n, impl in IMPL_TABLE.items() if impl.support(spec) is None]
  return _choose(entry_key(spec, stage), valid, heuristic(spec, stage),
                 lambda: measure(spec, stage), spec.macs)


def choose(spec: ConvSpec) -> Plan:
  """The ``auto`` plan: forward chosen now, gradients when a backward pass asks."""
  return Plan(choose_stage(spec, "forward"), "auto", "auto")


def choose_separable(spec: ConvSpec, pw_spec: ConvSpec, stage: str) -> str:
  """'fused' or 'unfused' for the forward or backward of ``separable_conv(impl='auto')``."""
  from sepconv.conv import separable  # noqa: PLC0415 (separable imports this module)
  fused_ok = separable.fused_support(spec, pw_spec) is None
  valid = ["fused", "unfused"] if fused_ok else ["unfused"]
  default = "fused" if fused_ok and jax.default_backend() == "cpu" else "unfused"
  key = f"{device_key()}|{spec.key()}|pw{pw_spec.key()}|separable_{stage}"

  def run_measure():
    with jax.ensure_compile_time_eval():
      args = _random_arrays(spec.dtype, spec.in_shape, spec.kernel_shape, pw_spec.kernel_shape,
                            pw_spec.out_shape)
      fns = {}
      for name in valid:
        fn = separable.STAGE_FNS[stage][name]
        if stage == "forward":
          fns[name] = jax.jit(lambda x, ks, kp, dy, fn=fn: fn(x, ks, kp, spec, pw_spec))
        else:
          fns[name] = jax.jit(lambda x, ks, kp, dy, fn=fn: fn(x, ks, kp, dy, spec, pw_spec))
      return _timed(fns, args, 3)

  return _choose(key, valid, default, run_measure, spec.macs + pw_spec.macs)
