"""Keeping freed host memory: XLA's per-call blocks stop page-faulting (glibc, Linux).

Each case runs in a fresh process: the setting is process-wide and must come before JAX
starts its backend. Page faults are counted (``ru_minflt``), not timed.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from sepconv import hostmem

GLIBC_LINUX = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# A program whose temporaries are one 134 MB block (above glibc's largest mmap threshold
# and a thread arena's largest heap); its page faults in each of the last ten of 40 calls.
# The heap grows over the first calls (jax 0.7.2 frees a call's block after the next call
# has taken one, so it takes a few blocks and up to about 20 calls to settle).
_FAULTS = """
import json, resource, sys
from sepconv import hostmem
kept = hostmem.keep_freed_host_memory() if sys.argv[1] == "keep" else False
import jax, jax.numpy as jnp
f = jax.jit(lambda x: jnp.cumsum(jnp.sin(x) * 2.0, axis=0)[-1])
x = jnp.ones((2048, 8192))
compiled = f.lower(x).compile()
temp = compiled.memory_analysis().temp_size_in_bytes
faults = []
for _ in range(40):
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  compiled(x).block_until_ready()
  faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
faults = faults[-10:]
print(json.dumps({"kept": kept, "kept_now": hostmem.kept(), "faults": faults,
                  "pages": temp / resource.getpagesize()}))
"""


def _run(code: str, *args: str, env: dict | None = None) -> str:
  """``code`` in a fresh interpreter, the switch unset unless ``env`` sets it; its stdout."""
  base = {k: v for k, v in os.environ.items() if k != hostmem.ENV}
  return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                        timeout=120, check=True, env={**base, **(env or {})}).stdout


@pytest.mark.skipif(not GLIBC_LINUX, reason="glibc's allocator on Linux")
def test_kept_memory_stops_the_per_call_page_faults():
  plain = json.loads(_run(_FAULTS, "plain").splitlines()[-1])
  kept = json.loads(_run(_FAULTS, "keep").splitlines()[-1])
  assert plain["pages"] > 30_000  # the block glibc would mmap
  # Its pages fault again on every call...
  assert all(f > plain["pages"] / 2 for f in plain["faults"])
  # ...unless the memory is kept: then, once the heap has settled, calls reuse its pages.
  assert kept["kept"] and kept["kept_now"]
  reused = [f < kept["pages"] / 10 for f in kept["faults"]]
  assert sum(reused) >= 8, kept["faults"]


@pytest.mark.skipif(not GLIBC_LINUX, reason="glibc's allocator on Linux")
def test_too_late_once_jax_has_started():
  code = ("import warnings, jax; from sepconv import hostmem; jax.devices()\n"
          "with warnings.catch_warnings(record=True) as w:\n"
          "  warnings.simplefilter('always'); ok = hostmem.keep_freed_host_memory()\n"
          "print(ok, hostmem.kept(), hostmem.keep_if_wanted(), str(w[0].message))")
  ok, kept, again, message = _run(code).strip().split(" ", 3)
  assert (ok, kept, again) == ("False", "False", "False")
  assert "after JAX started its backend" in message


@pytest.mark.skipif(not GLIBC_LINUX, reason="glibc's allocator on Linux")
@pytest.mark.parametrize("setting, expected", [(None, "True"), ("0", "False"), ("off", "False")])
def test_the_command_line_keeps_it_unless_turned_off(setting, expected):
  code = ("from sepconv import hostmem; from sepconv.cli.main import main\n"
          "main(['cost', 'seed']); print(hostmem.kept())")
  out = _run(code, env=None if setting is None else {hostmem.ENV: setting})
  assert out.strip().splitlines()[-1] == expected


@pytest.mark.skipif(not GLIBC_LINUX, reason="glibc's allocator on Linux")
def test_an_ablation_worker_keeps_it():
  code = ("from sepconv import hostmem; from sepconv.ablation.executor import "
          "prepare_worker_environment\nprepare_worker_environment(); print(hostmem.kept())")
  assert _run(code).strip().splitlines()[-1] == "True"


def test_the_test_processes_leave_it_alone():
  """conftest turns it off, so records made in tests say it was off."""
  assert not hostmem.wanted() and not hostmem.kept()
