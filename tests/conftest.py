"""Test configuration: strict JAX and 8 fake CPU devices, set before jax initialises."""

import os
import tempfile

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Autotune choices and compiled executables of the tests stay out of the user's cache.
os.environ.setdefault("SEPCONV_CACHE_DIR", tempfile.mkdtemp(prefix="sepconv-test-cache-"))

import jax  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
