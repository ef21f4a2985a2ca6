"""``impl='auto'``: measured choices, the on-disk cache, the heuristic, one trace per shape."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sepconv.conv import choice, conv_geometry, grouped_conv, plan_for, policy, table
from sepconv.conv import measure as measure_lib
from sepconv.conv import plan as plan_lib


@pytest.fixture(autouse=True)
def tuner(tmp_path, monkeypatch):
  """A fresh tuner (its own cache in tmp_path) that measures even these tiny convs."""
  monkeypatch.setenv("SEPCONV_CACHE_DIR", str(tmp_path))
  monkeypatch.delenv("SEPCONV_AUTOTUNE", raising=False)
  with policy.using(policy.Tuner(min_measure_macs=0)) as fresh:
    yield fresh


def _never_measure(*args, **kwargs):
  pytest.fail("measured")


def _arrays(groups=4, group_in=1, group_out=1, hw=8, seed=0):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.standard_normal((2, hw, hw, groups * group_in)), jnp.float32)
  k = jnp.asarray(rng.standard_normal((3, 3, group_in, groups * group_out)), jnp.float32)
  return x, k


def _cached_choices(path):
  entries = json.loads(path.read_text())["entries"]
  return {key.rsplit("|", 1)[1]: v["choice"] for key, v in entries.items()}


def test_auto_matches_the_implementations_it_chose(tmp_path):
  x, k = _arrays(groups=4, group_in=2, group_out=2)
  geom = conv_geometry(x, k, feature_group_count=4)
  y, vjp = jax.vjp(lambda a, b: grouped_conv(a, b, feature_group_count=4), x, k)
  dy = jnp.asarray(np.random.default_rng(1).standard_normal(y.shape), jnp.float32)
  dx, dk = vjp(dy)
  chosen = _cached_choices(policy.cache_path())
  assert set(chosen) == {"forward", "input_grad", "kernel_grad"}
  y_chosen = grouped_conv(x, k, feature_group_count=4, impl=chosen["forward"])
  np.testing.assert_allclose(np.asarray(y), np.asarray(y_chosen), rtol=1e-6, atol=1e-6)
  dx_chosen = table.input_grad(chosen["input_grad"], x, k, dy, geom)
  dk_chosen = table.kernel_grad(chosen["kernel_grad"], x, k, dy, geom)
  np.testing.assert_allclose(np.asarray(dx), np.asarray(dx_chosen), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(np.asarray(dk), np.asarray(dk_chosen), rtol=1e-5, atol=1e-5)
  for stage in ("forward", "input_grad"):
    entry = policy.lookup(geom, stage)
    times = entry["times_ms"]
    assert "xla" in times  # the reference is measured
    assert entry["choice"] == choice.pick(times, choice.eligible(geom, "cpu"),
                                          choice.heuristic(geom, stage))


def test_choice_survives_cleared_memory_without_measuring(tuner):
  x, k = _arrays()
  geom = conv_geometry(x, k, feature_group_count=4)
  first = plan_for(geom)
  tuner.cache.forget()
  tuner.measure = _never_measure
  assert plan_for(geom) == first


def test_choice_survives_a_new_process(tmp_path):
  x, k = _arrays()
  geom = conv_geometry(x, k, feature_group_count=4)
  assert choice.heuristic(geom, "forward") != "dense"
  key = policy.entry_key(geom, "forward")
  policy._write_entry(key, {"choice": "dense", "times_ms": {"dense": 1.0}})
  code = ("import jax.numpy as jnp; from sepconv.conv import conv_geometry, plan_for;"
          "x = jnp.zeros((2, 8, 8, 4)); k = jnp.zeros((3, 3, 1, 4));"
          "print(plan_for(conv_geometry(x, k, feature_group_count=4)).forward)")
  env = dict(os.environ, SEPCONV_CACHE_DIR=str(tmp_path), SEPCONV_AUTOTUNE="0",
             JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120, check=True).stdout
  assert out.strip().splitlines()[-1] == "dense"


def test_corrupt_cache_file_is_rebuilt(tmp_path):
  path = policy.cache_path()
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text("{not json")
  x, k = _arrays()
  with pytest.warns(UserWarning, match="corrupt"):
    y = grouped_conv(x, k, feature_group_count=4)
  assert y.shape == (2, 8, 8, 4)
  assert "forward" in _cached_choices(path)
  assert path.with_suffix(".corrupt").exists()
  assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # atomic writes


def test_wrong_version_is_rebuilt_too(tmp_path):
  path = policy.cache_path()
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps({"version": 0, "entries": {}}))
  x, k = _arrays()
  with pytest.warns(UserWarning, match="corrupt"):
    plan_for(conv_geometry(x, k, feature_group_count=4))
  assert json.loads(path.read_text())["version"] == policy.CACHE_VERSION


def test_measuring_off_uses_the_heuristic_and_writes_nothing(monkeypatch, tuner):
  monkeypatch.setenv("SEPCONV_AUTOTUNE", "0")
  monkeypatch.setattr(choice, "MIN_MEASURE_MACS", 0)  # the heuristic for large convs
  tuner.measure = _never_measure
  for groups, group_in, want in ((4, 1, "shift"), (2, 16, "supergroup"), (1, 16, "xla")):
    x, k = _arrays(groups=groups, group_in=group_in, group_out=group_in)
    geom = conv_geometry(x, k, feature_group_count=groups)
    if group_in >= 8 and table.IMPL_TABLE["ffi"].support(geom) is None:
      want = "ffi"  # the C++ kernels, where built, from 8 channels per group
    assert plan_for(geom).forward == choice.heuristic(geom, "forward") == want
    jax.grad(lambda a: grouped_conv(a, k, feature_group_count=groups).sum())(x)
  assert not policy.cache_path().exists()


def test_heuristic_on_accelerators_is_native():
  x, k = _arrays()
  geom = conv_geometry(x, k, feature_group_count=4)
  for stage in table.COMPUTATIONS:
    for platform in ("cuda", "rocm", "tpu"):
      assert choice.heuristic(geom, stage, platform) == "xla"
  with pytest.raises(ValueError, match=r"platform \(='gpu'\) must be one of"):
    choice.heuristic(geom, "forward", "gpu")


def test_auto_measures_at_trace_time_inside_jit_grad_and_vmap():
  x, k = _arrays()
  loss = lambda a, b: jnp.sum(grouped_conv(a, b, feature_group_count=4) ** 2)
  gx, gk = jax.jit(jax.grad(loss, argnums=(0, 1)))(x, k)
  want = jax.grad(lambda a, b: jnp.sum(grouped_conv(a, b, feature_group_count=4,
                                                    impl="xla") ** 2), argnums=(0, 1))(x, k)
  np.testing.assert_allclose(np.asarray(gx), np.asarray(want[0]), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(np.asarray(gk), np.asarray(want[1]), rtol=1e-4, atol=1e-4)
  per_example = jax.jit(jax.vmap(lambda a: grouped_conv(a[None], k, feature_group_count=4)[0]))
  np.testing.assert_allclose(np.asarray(per_example(x)),
                             np.asarray(grouped_conv(x, k, feature_group_count=4, impl="xla")),
                             rtol=1e-5, atol=1e-5)


def test_candidates_skip_known_hopeless_weight_gradients():
  x, k = _arrays(groups=64)
  geom = conv_geometry(x, k, feature_group_count=64)
  names = choice.candidates(geom, "kernel_grad", "cpu")
  assert not {"xla", "xla_noynn", "dense"} & set(names)
  assert "xla" in choice.candidates(geom, "input_grad", "cpu")
  assert names[0] == choice.heuristic(geom, "kernel_grad", "cpu")


def test_cpu_weight_gradient_candidates_keep_xla_for_dense_convs_only(monkeypatch):
  """XLA's own weight gradient is measured for a dense conv (measured alone, it is what
  the step runs), not for a grouped one (a masked dense convolution), unless nothing else
  runs the geometry."""
  x, k = _arrays(groups=1, group_in=16, group_out=8)
  geom = conv_geometry(x, k)
  assert "xla" in choice.candidates(geom, "kernel_grad", "cpu")
  assert "xla_noynn" not in choice.candidates(geom, "kernel_grad", "cpu")
  grouped = conv_geometry(*_arrays(groups=2, group_in=16, group_out=8), feature_group_count=2)
  assert "xla" not in choice.candidates(grouped, "kernel_grad", "cpu")
  assert "xla" in choice.candidates(grouped, "kernel_grad", "cuda")
  monkeypatch.setattr(choice, "eligible", lambda geom, platform: ["xla", "xla_noynn"])
  assert choice.candidates(grouped, "kernel_grad", "cpu") == ["xla"]


@pytest.mark.parametrize("impl, hw", [("auto", 11), ("shift", 12), ("xla", 13)])
def test_compiles_once_per_shape(impl, hw):
  x, k = _arrays(hw=hw)  # a shape no other test traces
  geom = conv_geometry(x, k, feature_group_count=4)
  plan = plan_for(geom, impl)
  assert plan_lib.TRACE_COUNTS[(geom, plan)] == 0
  for _ in range(3):
    grouped_conv(x, k, feature_group_count=4, impl=impl)
  step = jax.jit(jax.grad(lambda a: grouped_conv(a, k, feature_group_count=4, impl=impl).sum()))
  for _ in range(3):
    step(x)
  assert plan_lib.TRACE_COUNTS[(geom, plan)] == 1
  x2, _ = _arrays(hw=hw + 10)
  for _ in range(2):
    grouped_conv(x2, k, feature_group_count=4, impl=impl)
  geom2 = conv_geometry(x2, k, feature_group_count=4)
  assert plan_lib.TRACE_COUNTS[(geom2, plan_for(geom2, impl))] == 1


def test_tiny_convolutions_take_the_heuristic(tuner):
  tuner.min_measure_macs = choice.MIN_MEASURE_MACS
  tuner.measure = _never_measure
  x, k = _arrays()
  geom = conv_geometry(x, k, feature_group_count=4)
  assert geom.macs < choice.MIN_MEASURE_MACS
  assert plan_for(geom).forward == choice.heuristic(geom, "forward")
  assert not policy.cache_path().exists()


def test_a_candidate_that_fails_while_measured_is_dropped_with_one_warning(monkeypatch):
  x, k = _arrays(groups=4, group_in=2, group_out=2)
  geom = conv_geometry(x, k, feature_group_count=4)
  names = choice.candidates(geom, "forward")
  broken = names[0]  # the heuristic's choice, measured first
  original = table.computation_fn

  def failing(name, computation, g):
    if name == broken:
      def fail(x, k, dy):
        raise NotImplementedError("Evaluation rule for 'empty2' not implemented")
      return fail
    return original(name, computation, g)

  monkeypatch.setattr(measure_lib, "computation_fn", failing)
  with pytest.warns(UserWarning, match=rf"candidate '{broken}' dropped.*empty2") as caught:
    y = jax.jit(lambda a, b: grouped_conv(a, b, feature_group_count=4))(x, k)
  assert len([w for w in caught if "dropped" in str(w.message)]) == 1
  chosen = policy.lookup(geom, "forward")["choice"]
  assert chosen != broken and broken not in policy.lookup(geom, "forward")["times_ms"]
  want = jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", feature_group_count=4,
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(np.asarray(y), np.asarray(want), rtol=1e-5, atol=1e-5)


def test_when_every_candidate_fails_auto_runs_the_native_convolution(monkeypatch):
  x, k = _arrays(groups=4, group_in=2, group_out=2)
  geom = conv_geometry(x, k, feature_group_count=4)

  def failing(name, computation, g):
    def fail(x, k, dy):
      raise RuntimeError("RESOURCE_EXHAUSTED: out of memory")
    return fail

  monkeypatch.setattr(measure_lib, "computation_fn", failing)
  with pytest.warns(UserWarning, match="out of memory"):
    assert policy.choose(geom, "forward") == "xla"


@pytest.mark.parametrize("wrap", ["jit", "grad", "vmap", "scan"])
def test_measuring_works_inside_any_transformation(wrap):
  x, k = _arrays(groups=4, group_in=2, group_out=2)
  conv = lambda a: grouped_conv(a, k, feature_group_count=4)  # noqa: E731
  if wrap == "jit":
    y = jax.jit(conv)(x)
  elif wrap == "grad":
    y = jax.grad(lambda a: jnp.sum(conv(a) ** 2))(x)
  elif wrap == "vmap":
    y = jax.vmap(lambda a: conv(a[None])[0])(x)
  else:
    y = jax.lax.scan(lambda c, a: (c, conv(a[None])[0]), 0.0, x)[1]
  assert np.all(np.isfinite(np.asarray(y)))
  assert json.loads(policy.cache_path().read_text())["entries"]  # it measured


@pytest.mark.parametrize("ext", [True, False])
def test_small_weight_gradients_never_take_xlas_own_convolution(monkeypatch, request, ext):
  """The heuristic for small convs sends no weight gradient to XLA:CPU's own convolution:
  every one to the C++ kernels where built; else 1x1 dense ones to the matrix product,
  depthwise ones to shift, the others to im2col."""
  from sepconv.models import model_architecture
  from sepconv.models.net import conv_geometries
  from sepconv.conv import ffi
  if not ext:
    monkeypatch.setenv("SEPCONV_DISABLE_EXT", "1")
    ffi.status.cache_clear()
    request.addfinalizer(ffi.status.cache_clear)
  elif table.IMPL_TABLE["ffi"].support(conv_geometry(*_arrays(groups=1, group_in=8, group_out=8))):
    pytest.skip("the C++ extension is not built here")
  seen = set()
  for conv in ("standard", "grouped:g=4", "dws", "dws:g=2,m=2", "shufflenet:pg=4"):
    arch = model_architecture("mobilenet_v1_shallow", num_classes=10, conv=conv,
                              width_multiplier=0.25, input_size=8)
    for geom in conv_geometries(arch, (8, 8, 1), 32):
      if geom.macs >= choice.MIN_MEASURE_MACS:
        continue
      name = choice.heuristic(geom, "kernel_grad", "cpu")
      seen.add(name)
      assert name != "xla", geom.key()
      assert table.IMPL_TABLE[name].support(geom) is None
      if ext:
        assert name == "ffi"
      elif geom.groups == 1 and geom.is_pointwise:
        assert name == "pointwise"
      elif geom.groups > 1 and geom.group_in == 1:
        assert name == "shift"
      else:
        assert name == "im2col"
  if ext:
    assert seen == {"ffi"}
  else:
    assert {"pointwise", "shift"} <= seen


class _Timed:
  """A stand-in for a jitted candidate: ``lower(...).compile()`` gives a call that sleeps
  ``ms`` and logs its name, so the order of the measuring calls can be read back."""

  def __init__(self, name, ms, log):
    self.name, self.ms, self.log = name, ms, log

  def lower(self, *args):
    return self

  def compile(self):
    return self

  def __call__(self, *args):
    self.log.append(self.name)
    time.sleep(self.ms / 1e3)
    return np.zeros(())


def test_candidates_are_timed_in_interleaved_rounds_and_hopeless_ones_after_one_call():
  log = []
  fns = {n: _Timed(n, ms, log) for n, ms in (("a", 4.0), ("b", 6.0), ("slow", 60.0))}
  times = measure_lib._timed(fns, (), repeats=3)
  # WARMUP untimed calls each ('slow' stops after one: 3x the fastest), then rounds of a
  # and b, each round in its own shuffled order
  w = measure_lib.WARMUP
  assert log[:2 * w + 1] == ["a"] * w + ["b"] * w + ["slow"] and len(log) == 2 * w + 7
  assert all(sorted(log[i:i + 2]) == ["a", "b"] for i in range(2 * w + 1, 2 * w + 7, 2))
  assert set(times) == {"a", "b", "slow"}
  assert 4.0 <= times["a"] < times["b"] < times["slow"]
