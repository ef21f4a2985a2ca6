"""Data parallelism with ``jax.sharding``: one 'data' mesh axis, replicated parameters.

The batch is split along its first axis over every device of every host; parameters,
optimiser state and BatchNorm statistics are replicated. Under ``jit`` the compiler
(GSPMD) inserts the gradient all-reduce, and BatchNorm's batch mean and variance are
taken over the whole global batch, so the step computes the same numbers on 1 or N
devices up to float summation order.

Multi-host: each process calls ``train`` with the same config. When the environment
describes a cluster, ``maybe_initialize_distributed`` calls
``jax.distributed.initialize()`` first: set ``JAX_COORDINATOR_ADDRESS`` (host:port of
process 0), ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``, or run on a multi-host Cloud
TPU slice, where JAX finds the rest itself. A single host (Colab's one TPU chip, a GPU
box, a laptop) needs nothing. Every process reads the whole data set, draws the same
global permutation and feeds only its own slice of each global batch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def maybe_initialize_distributed() -> bool:
  """Joins a multi-process cluster when the environment sets one up; True if joined."""
  if jax.distributed.is_initialized():
    return True
  env = os.environ
  tpu_hosts = env.get("TPU_PROCESS_ADDRESSES") or env.get("TPU_WORKER_HOSTNAMES") or ""
  if not (env.get("JAX_COORDINATOR_ADDRESS") or "," in tpu_hosts):
    return False
  kwargs = {}
  if "JAX_NUM_PROCESSES" in env:
    kwargs["num_processes"] = int(env["JAX_NUM_PROCESSES"])
  if "JAX_PROCESS_ID" in env:
    kwargs["process_id"] = int(env["JAX_PROCESS_ID"])
  jax.distributed.initialize(**kwargs)
  return True


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 1-D mesh named 'data' over ``devices`` (default: all devices of all hosts)."""
  devices = list(jax.devices() if devices is None else devices)
  if not devices:
    raise ValueError("devices must not be empty")
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def check_batch(batch_size: int, mesh: Mesh, what: str = "batch_size") -> None:
  """Raises unless the global batch splits evenly over devices and processes."""
  devices = mesh.devices.size
  if batch_size % devices:
    raise ValueError(f"{what} (={batch_size}) must be divisible by the device count "
                     f"(={devices}); try {max(devices, batch_size // devices * devices)}")
  processes = len({d.process_index for d in mesh.devices.flat})
  if batch_size % processes:
    raise ValueError(f"{what} (={batch_size}) must be divisible by the process count "
                     f"(={processes})")


def put_global_batch(mesh: Mesh, *arrays: np.ndarray) -> tuple[jax.Array, ...]:
  """Shards host arrays holding the *global* batch; each process uploads its own rows."""
  sharding = batch_sharded(mesh)
  processes = sorted({d.process_index for d in mesh.devices.flat})
  index = processes.index(jax.process_index())
  out = []
  for array in arrays:
    rows = array.shape[0] // len(processes)
    local = array[index * rows:(index + 1) * rows]
    out.append(jax.make_array_from_process_local_data(sharding, local, array.shape))
  return tuple(out)
