"""``impl="auto"`` chooses per platform; the pieces of the autotuner stand alone."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export

from sepconv.conv import Plan, choice, conv_geometry, grouped_conv, plan_for, policy, table
from sepconv.conv.measure import Budget
from sepconv.conv.tune_cache import TuneCache, device_key


@pytest.fixture(autouse=True)
def tuner(tmp_path, monkeypatch):
  monkeypatch.setenv("SEPCONV_CACHE_DIR", str(tmp_path))
  monkeypatch.setenv("SEPCONV_AUTOTUNE", "0")
  with policy.using(policy.Tuner()) as fresh:
    yield fresh


def _geom(groups=2, group_in=16, hw=32, batch=4):
  x = jax.ShapeDtypeStruct((batch, hw, hw, groups * group_in), jnp.float32)
  k = jax.ShapeDtypeStruct((3, 3, group_in, groups * group_in), jnp.float32)
  return conv_geometry(x, k, feature_group_count=groups)


def test_cpu_only_implementations_are_never_chosen_for_tpu_or_gpu():
  geom = _geom()
  assert geom.macs >= choice.MIN_MEASURE_MACS
  for platform in ("cuda", "rocm", "tpu"):
    assert "ffi" not in choice.eligible(geom, platform)
    for computation in table.COMPUTATIONS:
      assert "ffi" not in choice.candidates(geom, computation, platform)
      assert table.IMPL_TABLE[policy.choose(geom, computation, platform)].runs_on(platform)
    assert plan_for(geom, platform=platform) == Plan.single("xla")
  if table.IMPL_TABLE["ffi"].support(geom) is None:  # extension built: CPU's choice
    assert plan_for(geom).forward == "ffi"


def test_cannot_lower_lists_every_entry_that_claims_other_platforms():
  for platform in choice.PLATFORMS:
    listed = table.cannot_lower(platform)
    assert set(listed) == {name for name, impl in table.IMPL_TABLE.items()
                           if impl.platforms is not None and platform not in impl.platforms}
    assert all(listed.values())  # each with its reason
  assert "ffi" in table.cannot_lower("tpu") and "CPU" in table.cannot_lower("tpu")["ffi"]
  assert "ffi" not in table.cannot_lower("cpu")


def test_one_traced_function_lowers_each_platforms_plan():
  """On CPU the module runs CPU's plan; exported for TPU it runs TPU's (native)."""
  x = jnp.ones((4, 32, 32, 32)); k = jnp.ones((3, 3, 16, 32))
  loss = jax.jit(jax.grad(lambda a, b: grouped_conv(a, b, feature_group_count=2).sum(),
                          argnums=(0, 1)))
  exported = export.export(loss, platforms=("tpu", "cuda"))(x, k)
  assert "sepconv_conv" not in exported.mlir_module()
  assert exported.platforms == ("tpu", "cuda")
  if table.IMPL_TABLE["ffi"].support(_geom()) is None:
    assert "sepconv_conv_input_grad" in loss.lower(x, k).as_text()
  want = jax.grad(lambda a, b: grouped_conv(a, b, feature_group_count=2, impl="xla").sum(),
                  argnums=(0, 1))(x, k)
  for got, ref in zip(loss(x, k), want):
    np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=1e-5, atol=1e-3)


def test_a_single_platform_lowering_reaches_xla_without_a_platform_conditional():
  """Compiled for one platform, each convolution is that platform's plan inline: a
  conditional over the platform index would reach XLA:CPU after it canonicalises
  convolutions, and the plan's XLA convolutions would compile as naive loops."""
  x = jnp.ones((4, 32, 32, 32)); k = jnp.ones((3, 3, 16, 32))
  plans = {p: plan_for(_geom(), platform=p) for p in ("cpu", "tpu")}
  assert plans["cpu"] != plans["tpu"]  # so the traced function holds a platform conditional
  loss = jax.jit(jax.grad(lambda a, b: grouped_conv(a, b, feature_group_count=2).sum(),
                          argnums=(0, 1)))
  assert "conditional(" not in loss.lower(x, k).as_text(dialect="hlo")
  two = jax.jit(lambda a, b: grouped_conv(a, b, feature_group_count=2, impl="xla")
                + grouped_conv(a, b, feature_group_count=2, impl="auto"))
  assert "conditional(" not in two.lower(x, k).as_text(dialect="hlo")


def test_a_cpu_only_implementation_asked_for_by_name_refuses_other_platforms():
  x = jnp.ones((1, 8, 8, 16)); k = jnp.ones((3, 3, 8, 16))
  f = jax.jit(lambda a, b: grouped_conv(a, b, feature_group_count=2, impl="ffi"))
  if table.IMPL_TABLE["ffi"].support(conv_geometry(x, k, feature_group_count=2)) is not None:
    pytest.skip("the C++ extension is not built or disabled here")
  with pytest.raises(ValueError, match=r"impl \(='ffi'\) can be lowered for \('cpu',\) only, "
                                       r"not for 'tpu'"):
    export.export(f, platforms=("tpu",))(x, k)
  assert f(x, k).shape == (1, 8, 8, 16)  # and still runs where it belongs


def test_a_plan_recorded_on_cpu_is_replayed_on_cpu_and_re_planned_elsewhere():
  geom = _geom()
  record = policy.plan_record([geom])
  assert list(record) == [f"cpu|{geom.key()}"]
  forced = {f"cpu|{geom.key()}": {c: "dense" for c in table.COMPUTATIONS}}
  with policy.replaying(forced):
    assert policy.choose(geom, "forward") == "dense"
    assert plan_for(geom, platform="tpu").forward == "xla"  # chosen afresh for TPU
  with policy.replaying({geom.key(): {"kernel_grad": "dense"}}):  # recorded before platforms
    assert policy.choose(geom, "kernel_grad", "cpu") == "dense"
    assert policy.choose(geom, "kernel_grad", "tpu") == "xla"
  with policy.replaying({f"tpu|{geom.key()}": {"forward": "ffi"}}):
    with pytest.raises(ValueError, match=r"replayed plan \(='ffi'\).*cannot run here"):
      policy.choose(geom, "forward", "tpu")
  assert policy.choose(geom, "forward") != "dense"  # the block restored the tuner


def test_tuners_are_independent_and_replaceable(tmp_path, monkeypatch):
  monkeypatch.setenv("SEPCONV_AUTOTUNE", "1")
  geom = _geom()
  calls = []

  def fake_measure(g, computation, names):
    calls.append((g, computation, tuple(names)))
    return {name: (0.5 if name == "dense" else 1.0) for name in names}

  own = policy.Tuner(cache=TuneCache(tmp_path / "own.json"), measure=fake_measure,
                     budget=Budget(None))
  with policy.using(own):
    assert policy.choose(geom, "forward") == "dense"
    assert policy.choose(geom, "forward") == "dense"  # distinct geometries measured once
    assert policy.choose(geom, "forward", "tpu") == "xla"  # not measurable on this host
  assert len(calls) == 1 and "xla" in calls[0][2] and "ffi" not in choice.candidates(
      geom, "forward", "tpu")
  entry = TuneCache(tmp_path / "own.json").get(f"{device_key()}|{geom.key()}|forward")
  assert entry["choice"] == "dense" and entry["times_ms"]["dense"] == 0.5
  assert device_key().startswith(f"cpu|{jax.devices()[0].device_kind}|jax-{jax.__version__}|")
  assert policy.tuner() is not own


def test_choices_measured_against_other_kernels_are_not_reused(tmp_path, monkeypatch):
  """The CPU key names the C++ kernels' build: a rebuilt library measures afresh."""
  from sepconv.conv import ffi
  monkeypatch.setenv("SEPCONV_AUTOTUNE", "1")
  built = ffi.build_id()
  assert (built is None) == (ffi.library_path() is None)
  assert built is None or (len(built) == 12 and int(built, 16) >= 0)
  geom = _geom(groups=4, group_in=4, hw=8, batch=2)
  cache = TuneCache(tmp_path / "own.json")
  calls = []

  def fake_measure(g, computation, names):
    calls.append(names)
    return {n: 1.0 + i for i, n in enumerate(names)}

  tuner = policy.Tuner(cache=cache, measure=fake_measure, budget=Budget(None),
                       min_measure_macs=0)
  monkeypatch.setattr(ffi, "build_id", lambda: "aaaaaaaaaaaa")
  assert device_key().endswith("|ffi-aaaaaaaaaaaa")
  tuner.choose(geom, "forward")
  tuner.choose(geom, "forward")
  assert len(calls) == 1
  monkeypatch.setattr(ffi, "build_id", lambda: "bbbbbbbbbbbb")
  tuner.choose(geom, "forward")
  assert len(calls) == 2
  monkeypatch.setattr(ffi, "build_id", lambda: None)
  assert "|ffi-" not in device_key()


def test_the_measuring_budget_bounds_what_is_measured(tmp_path, monkeypatch):
  monkeypatch.setenv("SEPCONV_AUTOTUNE", "1")
  spent = []

  def slow_measure(g, computation, names):
    spent.append(g)
    return {name: 1.0 for name in names}

  own = policy.Tuner(cache=TuneCache(tmp_path / "c.json"), measure=slow_measure,
                     budget=Budget(limit_s=0.0))
  with policy.using(own), pytest.warns(UserWarning, match="measuring budget of 0 s spent"):
    assert policy.choose(_geom(), "forward") == choice.heuristic(_geom(), "forward", "cpu")
  assert not spent
  budget = Budget(limit_s=1.0)
  budget.spend(0.4)
  assert budget.allows() and budget.measurements == 1
  budget.spend(0.7)
  with pytest.warns(UserWarning, match="budget"):
    assert not budget.allows()


@pytest.mark.parametrize("env, platform, want", [
    ("", "cpu", None), ("", "tpu", 180.0), ("", "cuda", 180.0), ("30", "tpu", 30.0),
    ("none", "tpu", None), ("0", "cpu", 0.0)])
def test_budget_defaults_and_environment(monkeypatch, env, platform, want):
  monkeypatch.setenv("SEPCONV_AUTOTUNE_BUDGET", env)
  assert Budget.from_env(platform).limit_s == want


def test_bad_budget_and_platform_say_what_was_expected(monkeypatch):
  monkeypatch.setenv("SEPCONV_AUTOTUNE_BUDGET", "soon")
  with pytest.raises(ValueError, match=r"SEPCONV_AUTOTUNE_BUDGET \(='soon'\) must be seconds"):
    Budget.from_env("tpu")
  with pytest.raises(ValueError, match=r"platform \(='gpu'\) must be one of"):
    plan_for(_geom(), platform="gpu")


def test_pick_keeps_the_incumbent_within_the_margin():
  # The heuristic's choice, where it was timed, is the incumbent.
  assert choice.pick({"xla": 1.0, "ffi": 1.03}, ["xla", "ffi"], "ffi") == "ffi"
  assert choice.pick({"xla": 1.0, "ffi": 1.06}, ["xla", "ffi"], "ffi") == "xla"
  assert choice.pick({"xla": 1.0, "shift": 0.97}, ["xla", "shift"], "xla") == "xla"
  assert choice.pick({"xla": 1.0, "shift": 0.5}, ["xla", "shift"], "xla") == "shift"
  # Else native is.
  assert choice.pick({"xla": 1.0, "shift": 0.97}, ["xla", "shift", "ffi"], "ffi") == "xla"
  assert choice.pick({"dense": 1.0, "shift": 0.97}, ["dense", "shift"], "ffi") == "shift"
  assert choice.pick({}, ["xla", "shift"], "shift") == "xla"
  assert choice.pick({}, ["shift"], "shift") == "shift"


def test_plan_for_a_named_implementation_on_a_platform_it_does_not_claim_says_why():
  assert plan_for(_geom(), "xla", platform="tpu") == Plan.single("xla")
  if table.IMPL_TABLE["ffi"].support(_geom()) is not None:
    pytest.skip("the C++ extension is not built or disabled here")
  with pytest.raises(ValueError, match=r"impl \(='ffi'\) cannot be lowered for platform "
                                       r"\(='tpu'\): XLA:CPU FFI"):
    plan_for(_geom(), "ffi", platform="tpu")
