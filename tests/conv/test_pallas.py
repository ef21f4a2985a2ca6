"""The Pallas kernels in interpret mode on CPU, against lax and PyTorch, and their lowering.

TPU kernels run in the TPU interpreter with race detection and NaN-filled uninitialised
memory (``RACES``) where it matters (the accumulating kernel gradient, several row and
channel blocks), elsewhere in plain interpret mode, which is faster; GPU kernels in plain
interpret mode. Each kernel is also exported for its platform with ``jax.export``.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax import export, lax
from jax.experimental.pallas import tpu as pltpu

from sepconv.conv import conv_geometry, grouped_conv
from sepconv.conv.geometry import make_geometry
from sepconv.conv.pallas import gpu, separable, tpu
from sepconv.conv.table import IMPL_TABLE

RACES = pltpu.InterpretParams(detect_races=True, uninitialized_memory="nan")
KERNELS = {"tpu": tpu, "gpu": gpu}


def _inputs(batch, h, w, groups, gi, go, kernel, dtype, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((batch, h, w, groups * gi)).astype(np.float32)
  k = rng.standard_normal(tuple(kernel) + (gi, groups * go)).astype(np.float32)
  return jnp.asarray(x, dtype), jnp.asarray(k / np.sqrt(gi * np.prod(kernel)), dtype)


def _geom(x, k, groups, strides, padding, dilation):
  return make_geometry(x.shape, k.shape, x.dtype, feature_group_count=groups, strides=strides,
                       padding=padding, dilation=dilation)


def _reference(x, k, geom):
  return lax.conv_general_dilated(
      x.astype(jnp.float32), k.astype(jnp.float32), geom.strides, geom.pads,
      rhs_dilation=geom.dilation, dimension_numbers=("NHWC", "HWIO", "NHWC"),
      feature_group_count=geom.groups, precision=lax.Precision.HIGHEST)


def _close(got, want, tol):
  got, want = np.asarray(got, np.float32), np.asarray(want, np.float32)
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, atol=tol * max(1.0, float(np.abs(want).max())), rtol=tol)


def _check(mod, case, dtype=jnp.float32, tol=2e-5, interpret=True, **blocks):
  """Forward, input gradient and kernel gradient of kernels ``mod`` against lax."""
  h, w, g, gi, go, kernel, strides, padding, dilation = case
  x, k = _inputs(2, h, w, g, gi, go, kernel, dtype)
  geom = _geom(x, k, g, strides, padding, dilation)
  if jax.default_backend() == "cpu":
    assert mod.support(geom) is not None  # not the kernels' platform: interpret mode only
  assert tpu.support_geometry(geom) is None
  kw = dict(interpret=interpret, **({"blocks": mod.BlockSizes(**blocks)} if blocks else {}))
  y_ref, vjp = jax.vjp(lambda a, b: _reference(a, b, geom), x, k)
  dy = jnp.asarray(np.random.default_rng(1).standard_normal(y_ref.shape), dtype)
  dx_ref, dk_ref = vjp(dy.astype(jnp.float32))
  # One jit: one compilation of the three interpreted kernels.
  y, dx, dk = jax.jit(lambda a, b, d: (mod.forward(a, b, geom, **kw),
                                       mod.input_grad(d, b, geom, **kw),
                                       mod.kernel_grad(a, d, geom, **kw)))(x, k, dy)
  assert (y.dtype, dx.dtype, dk.dtype) == (dtype,) * 3
  for got, want in ((y, y_ref), (dx, dx_ref), (dk, dk_ref)):
    _close(got, want, tol)


# (H, W, groups, group_in, group_out, kernel, strides, padding, dilation)
CASES = [
    (9, 9, 6, 1, 1, (3, 3), 1, "SAME", 1),                 # depthwise
    (8, 7, 4, 1, 3, (3, 3), 2, "SAME", 1),                 # depth multiplier 3, stride 2
    (9, 8, 4, 2, 2, (3, 3), 2, ((1, 2), (0, 3)), 2),       # groups of 2, stride 2, dilation 2
    (7, 9, 3, 4, 2, (3, 3), 1, "VALID", (2, 1)),           # groups of 4, VALID, dilation (2, 1)
    (6, 7, 5, 1, 1, (2, 3), (2, 1), ((1, 2), (0, 3)), 1),  # even kernel, explicit pads
    (5, 6, 2, 2, 1, (3, 3), (1, 2), ((2, -1), (1, 1)), (1, 2)),  # negative pad
    (2, 3, 4, 1, 1, (3, 3), 1, "SAME", 1),                 # image smaller than the kernel
    (9, 9, 1, 8, 8, (3, 3), 2, "SAME", 1),                 # 8 channels per group
]
FAST = [2]


@pytest.mark.parametrize("case", [CASES[i] for i in FAST], ids=[f"case{i}" for i in FAST])
def test_tpu_matches_lax(case):
  _check(tpu, case)


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for i, c in enumerate(CASES) if i not in FAST],
                         ids=[f"case{i}" for i in range(len(CASES)) if i not in FAST])
def test_tpu_matches_lax_every_case(case):
  _check(tpu, case)


def test_gpu_matches_lax():
  _check(gpu, CASES[1])


@pytest.mark.slow
@pytest.mark.parametrize("case", [CASES[5], CASES[2], CASES[3]], ids=["neg_pad", "g2", "g4"])
def test_gpu_matches_lax_several_blocks(case):
  _check(gpu, case, cols=4, channels=8)  # several column and channel blocks


@pytest.mark.slow
def test_tpu_race_detector_several_blocks():
  """Two channel blocks, three row blocks, two images: the reduction axes revisit a block."""
  _check(tpu, (7, 5, 130, 1, 1, (3, 3), 1, "SAME", 1), interpret=RACES, rows=3)


@pytest.mark.parametrize("name", ["tpu", pytest.param("gpu", marks=pytest.mark.slow)])
def test_bfloat16_accumulates_in_float32(name):
  _check(KERNELS[name], CASES[1], dtype=jnp.bfloat16, tol=3e-2)


@pytest.mark.slow
@settings(max_examples=4, deadline=None)
@given(h=st.integers(1, 9), w=st.integers(1, 9), groups=st.integers(1, 3),
       gi=st.sampled_from([1, 1, 2, 3]), go=st.integers(1, 3), kh=st.integers(1, 4),
       kw=st.integers(1, 4), sh=st.integers(1, 2), sw=st.integers(1, 2), dh=st.integers(1, 2),
       padding=st.sampled_from(["SAME", "VALID", "explicit"]), name=st.sampled_from(["tpu", "gpu"]),
       seed=st.integers(0, 99))
def test_property_random_shapes(h, w, groups, gi, go, kh, kw, sh, sw, dh, padding, name, seed):
  rng = np.random.default_rng(seed)
  if padding == "explicit":
    padding = tuple((int(rng.integers(-1, 3)), int(rng.integers(-1, 3))) for _ in range(2))
  x, k = _inputs(1, h, w, groups, gi, go, (kh, kw), jnp.float32)
  try:
    _geom(x, k, groups, (sh, sw), padding, (dh, 1))
  except ValueError:
    return  # empty output: not a valid convolution
  _check(KERNELS[name], (h, w, groups, gi, go, (kh, kw), (sh, sw), padding, (dh, 1)))


def test_matches_torch_conv2d_and_its_gradients():
  torch = pytest.importorskip("torch", reason="PyTorch is the independent reference")
  x, k = _inputs(2, 9, 8, 4, 1, 2, (3, 3), jnp.float32)  # depth multiplier 2
  geom = _geom(x, k, 4, 2, ((2, 2), (2, 2)), 2)
  xt = torch.from_numpy(np.array(x)).permute(0, 3, 1, 2).requires_grad_()
  kt = torch.from_numpy(np.array(k)).permute(3, 2, 0, 1).contiguous().requires_grad_()
  yt = torch.nn.functional.conv2d(xt, kt, stride=2, padding=2, dilation=2, groups=4)
  dy = np.random.default_rng(1).standard_normal(yt.shape).astype(np.float32)
  yt.backward(torch.from_numpy(dy))
  dy = jnp.asarray(dy.transpose(0, 2, 3, 1))
  _close(tpu.forward(x, k, geom, interpret=True), yt.detach().permute(0, 2, 3, 1).numpy(), 1e-5)
  _close(tpu.input_grad(dy, k, geom, interpret=True), xt.grad.permute(0, 2, 3, 1).numpy(), 1e-5)
  _close(gpu.kernel_grad(x, dy, geom, interpret=True), kt.grad.permute(2, 3, 1, 0).numpy(), 1e-5)


@pytest.fixture
def interpreted_table(monkeypatch):
  """The table's pallas_tpu entry, run by the interpreter and supported on this CPU."""
  impl = IMPL_TABLE["pallas_tpu"]
  monkeypatch.setitem(IMPL_TABLE, "pallas_tpu", dataclasses.replace(
      impl, support=tpu.support_geometry, platforms=None,
      forward=functools.partial(tpu.forward, interpret=True),
      input_grad=functools.partial(tpu.input_grad, interpret=True),
      kernel_grad=functools.partial(tpu.kernel_grad, interpret=True)))


def test_jit_grad_vmap_through_grouped_conv(interpreted_table):
  x, k = _inputs(2, 6, 5, 3, 1, 2, (3, 3), jnp.float32)
  kwargs = dict(feature_group_count=3, strides=2, padding="SAME")

  def loss(a, b, impl):
    return jnp.sum(jnp.sin(grouped_conv(a, b, impl=impl, **kwargs)))

  got = jax.jit(jax.grad(loss, argnums=(0, 1)), static_argnums=2)(x, k, "pallas_tpu")
  want = jax.grad(loss, argnums=(0, 1))(x, k, "xla")
  for g, w in zip(got, want):
    _close(g, w, 2e-5)
  batched = jax.vmap(lambda a: grouped_conv(a, k, impl="pallas_tpu", **kwargs))(x[:, None])
  _close(batched[:, 0], grouped_conv(x, k, impl="xla", **kwargs), 2e-5)


def test_separable_fused_matches_two_convs_with_gradients():
  x, dw = _inputs(2, 7, 9, 5, 1, 2, (3, 3), jnp.float32)
  pw = jnp.asarray(np.random.default_rng(2).standard_normal((1, 1, 10, 6)), jnp.float32)
  geom = _geom(x, dw, 5, 2, "SAME", 1)
  pw_geom = _geom(jnp.zeros(geom.out_shape), pw, 1, 1, "VALID", 1)
  ref = lambda a, b, c: _reference(_reference(a, b, geom), c, pw_geom)
  _close(separable.fused_forward(x, dw, pw, geom, RACES), ref(x, dw, pw), 2e-5)
  dy = jnp.asarray(np.random.default_rng(1).standard_normal(geom.out_shape[:3] + (6,)),
                   jnp.float32)
  fused = lambda a, b, c: separable.separable_conv(a, b, c, geom, True)
  grads = [jax.jit(jax.grad(lambda a, b, c, f=f: jnp.sum(f(a, b, c) * dy), argnums=(0, 1, 2)))(
      x, dw, pw) for f in (fused, ref)]
  for got, want in zip(*grads):
    _close(got, want, 2e-5)


def test_support_says_why():
  x, k = _inputs(1, 8, 8, 4, 1, 1, (3, 3), jnp.float32)
  with pytest.raises(ValueError, match=r"impl \(='pallas_tpu'\) can be lowered for \('tpu',\) only, not for 'cpu'"):
    grouped_conv(x, k, feature_group_count=4, impl="pallas_tpu")
  with pytest.raises(ValueError, match=r"impl \(='pallas_gpu'\) can be lowered for \('cuda',\) only, not for 'cpu'"):
    grouped_conv(x, k, feature_group_count=4, impl="pallas_gpu")
  geom = conv_geometry(x, k, feature_group_count=4, strides=3)
  assert "strides (=(3, 3)) must be at most 2" in tpu.support_geometry(geom)
  x16, k16 = _inputs(1, 8, 8, 1, 16, 1, (3, 3), jnp.float32)
  assert "channels per group (in 16" in tpu.support_geometry(conv_geometry(x16, k16))
  geom = conv_geometry(x.astype(jnp.float16), k.astype(jnp.float16), feature_group_count=4)
  assert "dtype (=float16)" in tpu.support_geometry(geom)
  huge = make_geometry((1, 8, 20000, 1), (3, 3, 1, 1), jnp.float32, feature_group_count=1,
                       strides=1, padding="SAME", dilation=1)
  assert "VMEM budget" in tpu.support_geometry(huge)
  with pytest.raises(ValueError, match=r"block channels \(=48\) must be a power of two"):
    gpu.forward(x, k, conv_geometry(x, k, feature_group_count=4),
                blocks=gpu.BlockSizes(channels=48), interpret=True)


def test_reference_layer_blocks_fit_vmem():
  """3x3 depthwise, 56x56x128, float32: the closed-form footprint of the chosen block."""
  x, k = jax.ShapeDtypeStruct((32, 56, 56, 128), jnp.float32), jnp.zeros((3, 3, 1, 128))
  prob = tpu.tp.forward_problem(conv_geometry(x, k, feature_group_count=128))
  rows = tpu.choose_rows(prob, 128, 4)
  assert rows == 56  # the whole image: one row block, no halo copied twice
  # input 2*1*58*64*128*4 (56 + 2 halo columns in whole 8-row tiles), weights 2*9*128*4,
  # output 2*56*56*128*4, accumulator 56*128*4
  assert tpu.footprint(prob, rows, 128, 4, 56) == 3801088 + 9216 + 3211264 + 28672
  assert tpu.footprint(prob, rows, 128, 4, 56) <= tpu.VMEM_BUDGET
  big = tpu.tp.forward_problem(make_geometry((1, 224, 224, 128), (3, 3, 1, 128), jnp.float32,
                                             feature_group_count=128, strides=1,
                                             padding="SAME", dilation=1))
  rows = tpu.choose_rows(big, 128, 4)
  assert rows < 224 and tpu.footprint(big, rows, 128, 4, 224) <= tpu.VMEM_BUDGET


def _lowered(fn, args, platform):
  checks = [export.DisabledSafetyCheck.custom_call(gpu.TRITON_TARGET)] if platform == "cuda" else []
  return export.export(jax.jit(fn), platforms=[platform], disabled_checks=checks)(*args)


@pytest.mark.parametrize("platform", ["tpu", "cuda"])
def test_export_for_the_kernels_platform(platform):
  x, k = _inputs(2, 9, 8, 4, 1, 2, (3, 3), jnp.bfloat16)
  geom = _geom(x, k, 4, 2, "SAME", 2)
  dy = jnp.zeros(geom.out_shape, x.dtype)
  mod = tpu if platform == "tpu" else gpu
  marker = "tpu_custom_call" if platform == "tpu" else gpu.TRITON_TARGET
  for fn, args in ((lambda a, b: mod.forward(a, b, geom), (x, k)),
                   (lambda a, b: mod.input_grad(a, b, geom), (dy, k)),
                   (lambda a, b: mod.kernel_grad(a, b, geom), (x, dy))):
    exp = _lowered(fn, args, platform)
    assert marker in exp.mlir_module()
    assert exp.out_avals[0].dtype == jnp.bfloat16
  if platform == "tpu":
    pw = jnp.zeros((1, 1, 8, 16), x.dtype)
    grad = jax.grad(lambda a, b, c: separable.separable_conv(a, b, c, geom).astype(
        jnp.float32).sum(), argnums=(0, 1, 2))
    assert _lowered(grad, (x, k, pw), "tpu").mlir_module().count("tpu_custom_call") == 3
