"""``impl="auto"``: measure once per backend, shape and dtype, remember on disk.

What is chosen: three implementations per convolution, one for the forward, one for the
input gradient and one for the kernel gradient, each the fastest measured among the
implementations that support the configuration. The forward is chosen when
``grouped_conv`` is called; the two gradients only when a backward pass is traced (the
custom VJP rule asks for them then), so inference never pays for measuring backward.

When it is measured: at trace time. ``grouped_conv`` usually runs inside a jitted Flax
module, where the arrays are abstract, but their shape and dtype are known, which is all
a measurement needs: it runs each candidate, jitted, on random arrays of that shape under
``jax.ensure_compile_time_eval`` (one warm call, then up to three timed calls, fewer when
a candidate is already 3x slower than the best), on the default device. Results are kept
in memory and in a JSON file keyed by backend, device kind, jax/jaxlib versions and the
full ``ConvSpec`` (shapes, groups, strides, padding, dilation, dtype).

Cache file: ``$SEPCONV_CACHE_DIR/autotune.json``, default ``~/.cache/sepconv/autotune.json``.
Writes are atomic (temporary file plus ``os.replace``) and merge with entries other
processes wrote meanwhile. A file that cannot be parsed is set aside with a warning and
rebuilt, never fatal.

When measuring is off (``SEPCONV_AUTOTUNE=0``), choices come from ``heuristic``, a fixed
table written from measurements on a 2-core x86 CPU (see its docstring); choices already
in the cache are still used.
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
CACHE_VERSION = 1
_MEMORY: dict[str, dict] = {}


# ---------------------------------------------------------------- heuristic


def heuristic(spec: ConvSpec, stage: str, backend: str | None = None) -> str:
  """The implementation for ``stage`` when nothing is measured.

  CPU (measured on a 2-core x86 host, float32, 56x56x128 -> 128, batch 32):
    * shifted multiply-adds (``shift``) win every stage wherever they apply (depthwise,
      depth multipliers, up to 8 channels per group): 10-40x the native forward, and
      the native weight gradient of a grouped conv is expanded densely by XLA:CPU;
    * 1x1 kernels: the matmul path;
    * wider groups: the native conv kept off YNNPACK (``xla_noynn``) forward and for the
      input gradient; for the kernel gradient the block-diagonal dense conv while G <= 8
      (its cost is G times the grouped arithmetic, but it avoids the dense expansion);
    * dense (G = 1): native.
  GPU and TPU: native everywhere (cuDNN / the TPU compiler handle grouped convs; custom
  rules here are untested on those backends).
  """
  backend = backend or jax.default_backend()
  if backend != "cpu":
    return "xla"
  if spec.is_pointwise and stage == "forward":
    return "pointwise"
  if registry.IMPL_TABLE["shift"].support(spec) is None:
    return "shift"
  if spec.groups == 1:
    return "xla"
  if stage == "kernel_grad" and spec.groups <= 8:
    return "dense"
  return "xla_noynn"


def candidates(spec: ConvSpec, stage: str, backend: str | None = None) -> list[str]:
  """Implementations worth measuring for ``stage``: supported and not hopeless.

  The block-diagonal dense conv is left out past 32 groups (32x the arithmetic).
  The heuristic's choice comes first so slow candidates are cut short early.
  """
  names = [n for n, impl in IMPL_TABLE.items() if impl.support(spec) is None]
  if spec.groups == 1:
    names = [n for n in names if n != "dense"]  # identical to xla
  elif spec.groups > 32:
    names = [n for n in names if n != "dense"]
  first = heuristic(spec, stage, backend)
  return [first] + [n for n in names if n != first]


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
  return f"{device.platform}|{device.device_kind}|jax-{jax.__version__}|jaxlib-{jax.lib.__version__}"


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
        isinstance(v, dict) and v.get("choice") in IMPL_TABLE for v in entries.values()):
      raise ValueError("entries must map keys to {'choice': impl, ...}")
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
  if key not in _MEMORY:
    entry = _read_file(cache_path()).get(key)
    if entry is None or IMPL_TABLE[entry["choice"]].support(spec) is not None:
      return None
    _MEMORY[key] = entry
  return _MEMORY[key]


def clear_memory_cache() -> None:
  """Forgets in-memory choices (the file stays), as a new process would."""
  _MEMORY.clear()


# ---------------------------------------------------------------- measuring


def _stage_fn(name: str, stage: str, spec: ConvSpec):
  if stage == "forward":
    return jax.jit(lambda x, k, dy: IMPL_TABLE[name].forward(x, k, spec))
  if stage == "input_grad":
    return jax.jit(lambda x, k, dy: registry.input_grad(name, x, k, dy, spec))
  return jax.jit(lambda x, k, dy: registry.kernel_grad(name, x, k, dy, spec))


def _random_arrays(spec: ConvSpec):
  rng = np.random.default_rng(0)
  dtype = jnp.dtype(spec.dtype)
  fan_in = spec.kernel_shape[0] * spec.kernel_shape[1] * spec.kernel_shape[2]
  x = rng.standard_normal(spec.in_shape, dtype=np.float32)
  k = rng.standard_normal(spec.kernel_shape, dtype=np.float32) / np.sqrt(fan_in)
  dy = rng.standard_normal(spec.out_shape, dtype=np.float32)
  return tuple(jax.device_put(jnp.asarray(a, dtype)) for a in (x, k, dy))


def measure(spec: ConvSpec, stage: str, names: list[str] | None = None,
            repeats: int = 3) -> dict[str, float]:
  """Median wall milliseconds of each candidate for ``stage``, measured now, eagerly."""
  names = candidates(spec, stage) if names is None else names
  times: dict[str, float] = {}
  with jax.ensure_compile_time_eval():
    args = _random_arrays(spec)
    for name in names:
      fn = _stage_fn(name, stage, spec)
      jax.block_until_ready(fn(*args))  # compile and warm
      runs = []
      for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        runs.append((time.perf_counter() - start) * 1e3)
        if times and runs[-1] > 3 * min(times.values()):
          break
      times[name] = float(np.median(runs))
  return times


def choose_stage(spec: ConvSpec, stage: str) -> str:
  """The implementation ``auto`` uses for ``stage`` of ``spec``."""
  entry = lookup(spec, stage)
  if entry is not None:
    return entry["choice"]
  if not measuring_enabled():
    return heuristic(spec, stage)
  times = measure(spec, stage)
  choice = min(times, key=times.get)
  entry = {"choice": choice, "times_ms": times,
           "measured": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
  key = entry_key(spec, stage)
  _MEMORY[key] = entry
  _write_entry(key, entry)
  return choice


def choose(spec: ConvSpec) -> Plan:
  """The ``auto`` plan: forward chosen now, gradients when a backward pass asks."""
  return Plan(choose_stage(spec, "forward"), "auto", "auto")
