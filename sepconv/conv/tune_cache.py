"""The autotuner's memory: measured choices, in this process and in a JSON file.

Keys name what a measurement is valid for: the platform, the device kind, the jax and
jaxlib versions, the full ``ConvGeometry`` and the computation
(``cpu|cpu|jax-0.7.2|jaxlib-0.7.2|cpus-2|x32x56x56x128_k3x3x1x128_g128_...|forward``;
on a CPU also the CPUs the process may use and the C++ kernels' build), so a
cache kept on shared storage (Colab: ``SEPCONV_CACHE_DIR`` on Google Drive) serves every
runtime of the same device kind and software, and no other.

File: ``$SEPCONV_CACHE_DIR/autotune.json``, default ``~/.cache/sepconv/autotune.json``,
read when a key is not in memory. Writes are atomic (temporary file plus ``os.replace``)
and merge with entries other processes wrote meanwhile. A file that cannot be parsed is
set aside with a warning and rebuilt, never fatal.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

import jax

from sepconv.conv import ffi
from sepconv.provenance import usable_cpus

# 2: a measured choice keeps the heuristic's (not the native conv) within the margin.
CACHE_VERSION = 2
FILE_NAME = "autotune.json"


def default_path() -> Path:
  """``$SEPCONV_CACHE_DIR/autotune.json``, else ``~/.cache/sepconv/autotune.json``."""
  root = os.environ.get("SEPCONV_CACHE_DIR")
  base = Path(root) if root else Path.home() / ".cache" / "sepconv"
  return base / FILE_NAME


def host_platform() -> str:
  """The lowering platform of this process's default device: 'cpu', 'cuda', 'rocm' or 'tpu'."""
  device = jax.devices()[0]
  if device.platform != "gpu":
    return device.platform
  version = str(getattr(device.client, "platform_version", "")).lower()
  return "rocm" if "rocm" in version else "cuda"


def device_key() -> str:
  """Platform, device kind and versions of this process's default device; on a CPU also
  the CPUs the process may use (a plan fastest on 2 threads need not be on 1) and the
  build of the C++ kernels, if any (choices measured against other kernels are stale)."""
  versions = f"jax-{jax.__version__}|jaxlib-{jax.lib.__version__}"
  platform = host_platform()
  cpu = ""
  if platform == "cpu":
    build = ffi.build_id()
    cpu = f"|cpus-{usable_cpus()}" + (f"|ffi-{build}" if build else "")
  return f"{platform}|{jax.devices()[0].device_kind}|{versions}{cpu}"


def read_file(path: Path) -> dict:
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


def write_entry(path: Path, key: str, entry: dict) -> None:
  """Merges one entry into the file at ``path`` atomically; failures only warn."""
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    entries = read_file(path)
    entries[key] = entry
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".autotune.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
      json.dump({"version": CACHE_VERSION, "entries": entries}, f, indent=1, sort_keys=True)
    os.replace(tmp, path)
  except OSError as e:
    warnings.warn(f"sepconv autotune cache {path} not written ({e})")


class TuneCache:
  """Choices by key: in memory first, then the file (``path``, or ``default_path()`` when used).

  An entry is ``{'choice': name, 'times_ms': {...}, 'measured': iso time}``. Entries kept
  only in memory (``remember``) are choices this process made without measuring.
  """

  def __init__(self, path: str | Path | None = None):
    self._path = Path(path) if path is not None else None
    self._memory: dict[str, dict] = {}

  @property
  def path(self) -> Path:
    return self._path if self._path is not None else default_path()

  def get(self, key: str) -> dict | None:
    entry = self._memory.get(key)
    if entry is None:
      entry = read_file(self.path).get(key)
      if entry is not None:
        self._memory[key] = entry
    return entry

  def put(self, key: str, entry: dict) -> None:
    """Keeps ``entry`` in memory and in the file."""
    self._memory[key] = entry
    write_entry(self.path, key, entry)

  def remember(self, key: str, entry: dict) -> None:
    """Keeps ``entry`` in this process only."""
    self._memory[key] = entry

  def forget(self) -> None:
    """Drops what is kept in memory (the file stays), as a new process would start."""
    self._memory.clear()

  def summary(self) -> dict:
    """Where the file is, and how many choices it holds for this device and in all."""
    path = self.path
    entries = read_file(path)
    prefix = device_key() + "|"
    return {"path": str(path), "exists": path.exists(), "entries": len(entries),
            "entries_for_this_device": sum(key.startswith(prefix) for key in entries),
            "device_key": device_key()}
