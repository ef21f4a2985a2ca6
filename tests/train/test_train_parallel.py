"""Mesh, batch sharding and when a multi-host cluster is joined."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from sepconv.train import parallel


def test_mesh_and_batch_sharding_over_eight_devices():
  mesh = parallel.make_mesh()
  assert mesh.axis_names == ("data",) and mesh.devices.size == 8
  x = np.arange(16 * 3, dtype=np.float32).reshape(16, 3)
  (sharded,) = parallel.put_global_batch(mesh, x)
  assert sharded.shape == (16, 3) and len(sharded.addressable_shards) == 8
  assert {s.data.shape for s in sharded.addressable_shards} == {(2, 3)}
  np.testing.assert_array_equal(np.asarray(sharded), x)
  parallel.check_batch(16, mesh)
  with pytest.raises(ValueError, match=r"batch_size \(=20\) must be divisible by the device "
                                       r"count \(=8\); try 16"):
    parallel.check_batch(20, mesh)
  with pytest.raises(ValueError, match="devices must not be empty"):
    parallel.make_mesh([])


@pytest.mark.parametrize("env, joins, kwargs", [
    ({}, False, None),
    ({"TPU_WORKER_HOSTNAMES": "localhost"}, False, None),  # one TPU host (e.g. Colab)
    ({"TPU_WORKER_HOSTNAMES": "w0,w1,w2,w3"}, True, {}),  # a pod slice: JAX finds the rest
    ({"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JAX_NUM_PROCESSES": "4",
      "JAX_PROCESS_ID": "2"}, True, {"num_processes": 4, "process_id": 2}),
])
def test_distributed_initialised_only_when_the_environment_says_so(monkeypatch, env, joins,
                                                                    kwargs):
  for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID",
               "TPU_WORKER_HOSTNAMES", "TPU_PROCESS_ADDRESSES"):
    monkeypatch.delenv(name, raising=False)
  for name, value in env.items():
    monkeypatch.setenv(name, value)
  calls = []
  monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
  assert parallel.maybe_initialize_distributed() is joins
  assert calls == ([kwargs] if joins else [])
