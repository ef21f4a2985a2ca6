"""Where a number came from: versions, device kind, git revision, time."""

from __future__ import annotations

import datetime
import functools
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path


def _version(package: str) -> str | None:
  try:
    return importlib.metadata.version(package)
  except importlib.metadata.PackageNotFoundError:
    return None


def versions(packages=("sepconv", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint",
                       "numpy")) -> dict[str, str | None]:
  """Installed versions of ``packages`` (None where one is not installed)."""
  return {package: _version(package) for package in packages}


@functools.cache
def git_revision(path: str | None = None) -> str | None:
  """HEAD of the repository holding ``path`` (default: this package), '+dirty' if modified.

  Changes under the top-level ``results/`` folder do not count: that is where committed
  reference records are regenerated (``--out results/NAME`` after removing the old ones),
  and they are the run's output, not the code that produced it.
  """
  cwd = Path(path) if path else Path(__file__).resolve().parent
  try:
    rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                         text=True, check=True, timeout=10).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                            ":(top)", ":(top,exclude)results"], cwd=cwd,
                           capture_output=True, text=True, check=True, timeout=10).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return None
  return rev + ("+dirty" if dirty else "")


@functools.cache
def cpu_model() -> str | None:
  """The CPU's model name (/proc/cpuinfo 'model name', else ``platform.processor()``)."""
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
          return value.strip()
  except OSError:
    pass
  return platform.processor() or None


def usable_cpus() -> int:
  """The CPUs this process may run on (its affinity mask, not all the host has)."""
  if hasattr(os, "sched_getaffinity"):
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1


def device_info() -> dict:
  """Backend, device kind and count as JAX sees them (initialises JAX)."""
  import jax
  devices = jax.devices()
  return {
      "platform": devices[0].platform,
      "device_kind": devices[0].device_kind,
      "device_count": len(devices),
      "process_count": jax.process_count(),
  }


def provenance() -> dict:
  """A dict to store beside every result."""
  return {
      "sepconv": _version("sepconv"),
      "jax": _version("jax"),
      "jaxlib": _version("jaxlib"),
      "flax": _version("flax"),
      "optax": _version("optax"),
      "numpy": _version("numpy"),
      "python": platform.python_version(),
      "machine": platform.machine(),
      "cpu": cpu_model(),
      "cpus": usable_cpus(),  # this process's: a pinned worker's timings are of its CPUs
      **device_info(),
      "git_revision": git_revision(),
      "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
  }
