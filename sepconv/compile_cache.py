"""JAX's persistent compilation cache for the long commands, on by default.

A model's training and evaluation steps take seconds to tens of seconds to compile on a
CPU; the cache keeps the compiled executables on disk, so running a sweep again (a
resumed run, the same grid on another data split, a second process) loads them instead.
It lives beside the autotune cache: ``$SEPCONV_CACHE_DIR/xla``, default
``~/.cache/sepconv/xla``. ``SEPCONV_COMPILATION_CACHE=0`` turns it off; a cache directory
the user set for JAX already is left alone. Cached executables compute exactly what
freshly compiled ones compute.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax


def cache_dir() -> Path:
  """``$SEPCONV_CACHE_DIR/xla``, else ``~/.cache/sepconv/xla``."""
  root = os.environ.get("SEPCONV_CACHE_DIR")
  return (Path(root) if root else Path.home() / ".cache" / "sepconv") / "xla"


def enable() -> Path | None:
  """Points JAX's persistent compilation cache at ``cache_dir()``; returns it (None if off)."""
  if os.environ.get("SEPCONV_COMPILATION_CACHE", "1").strip().lower() in ("0", "false", "off", "no"):
    return None
  current = jax.config.jax_compilation_cache_dir
  if current:
    return Path(current)
  path = cache_dir()
  try:
    path.mkdir(parents=True, exist_ok=True)
  except OSError:
    return None  # an unwritable home: compile every time, as without the cache
  jax.config.update("jax_compilation_cache_dir", str(path))
  return path
