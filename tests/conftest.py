"""Test configuration: strict JAX and 8 fake CPU devices, set before jax initialises."""

import os
import tempfile

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Autotune choices and compiled executables of the tests stay out of the user's cache.
os.environ.setdefault("SEPCONV_CACHE_DIR", tempfile.mkdtemp(prefix="sepconv-test-cache-"))
# The test processes leave glibc's allocator alone whichever test calls the command line
# first (``sepconv.hostmem``, process-wide); tests/test_hostmem.py checks it in fresh ones.
os.environ["SEPCONV_KEEP_FREED_HOST_MEMORY"] = "0"

import jax  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
# A program compiled again by a later test (the same model's step) loads from JAX's persistent
# compilation cache, as the command line's runs do; pytest-xdist's workers share one per run.
_RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID") or str(os.getpid())
jax.config.update("jax_compilation_cache_dir",
                  os.path.join(tempfile.gettempdir(), f"sepconv-test-xla-{_RUN}"))


def pytest_addoption(parser):
  parser.addoption("--full", action="store_true",
                   help="also run the tests marked slow (the whole suite, as CI runs it)")


def pytest_collection_modifyitems(config, items):
  """Without --full, the tests marked slow are deselected: a quick, meaningful suite."""
  if config.getoption("--full"):
    return
  slow = [item for item in items if item.get_closest_marker("slow")]
  if slow:
    config.hook.pytest_deselected(items=slow)
    items[:] = [item for item in items if not item.get_closest_marker("slow")]
