"""The C++ kernels behind ``impl='ffi'``: values and gradients equal XLA's (and PyTorch's),
under jit, vmap and grad, on every instruction set this CPU has; and the pure-JAX fallback
where the extension is absent or disabled.

Where the extension is not built these value tests skip and the fallback tests still run;
CI that builds it sets ``SEPCONV_REQUIRE_EXT=1`` so a silent skip cannot pass for a test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from sepconv.conv import conv_geometry, ffi, grouped_conv
from sepconv.conv.table import COMPUTATIONS, IMPL_TABLE

STATUS = ffi.status()
needs_ext = pytest.mark.skipif(STATUS.reason is not None,
                               reason=f"ffi kernels unavailable: {STATUS.reason}")


def _reference(x, k, groups, strides, pads, dilation):
  return lax.conv_general_dilated(
      x, k, strides, pads, rhs_dilation=dilation, dimension_numbers=("NHWC", "HWIO", "NHWC"),
      feature_group_count=groups, precision=lax.Precision.HIGHEST)


def _inputs(batch, h, w, groups, group_in, group_out, kernel, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((batch, h, w, groups * group_in)).astype(np.float32)
  k = rng.standard_normal(tuple(kernel) + (group_in, groups * group_out)).astype(np.float32)
  return jnp.asarray(x), jnp.asarray(k / np.sqrt(group_in * np.prod(kernel)))


def _assert_close(got, want, tol=2e-5, msg=""):
  got, want = np.asarray(got, np.float32), np.asarray(want, np.float32)
  assert got.shape == want.shape, msg
  scale = max(1.0, float(np.abs(want).max()))
  np.testing.assert_allclose(got, want, atol=tol * scale, rtol=tol, err_msg=msg)


def _check_against_xla(x, k, groups, strides, padding, dilation, msg=""):
  """Forward, input gradient and kernel gradient of 'ffi' (jitted) against XLA's."""
  kwargs = dict(feature_group_count=groups, strides=strides, padding=padding, dilation=dilation)
  geom = conv_geometry(x, k, **kwargs)
  fn = jax.jit(lambda a, b: grouped_conv(a, b, impl="ffi", **kwargs))
  ref = lambda a, b: _reference(a, b, groups, geom.strides, geom.pads, geom.dilation)
  y, vjp = jax.vjp(fn, x, k)
  y_ref, vjp_ref = jax.vjp(ref, x, k)
  dy = jnp.asarray(np.random.default_rng(1).standard_normal(y.shape), jnp.float32)
  for name, got, want in zip(("y", "dx", "dk"), (y, *vjp(dy)), (y_ref, *vjp_ref(dy))):
    _assert_close(got, want, msg=f"{name} {msg}")


# (H, W, groups, group_in, group_out, kernel, strides, padding, dilation)
CASES = [
    (9, 9, 6, 1, 1, (3, 3), 1, "SAME", 1),                    # depthwise
    (8, 7, 4, 1, 3, (3, 3), 1, "SAME", 1),                    # depth multiplier 3
    (9, 8, 4, 8, 8, (3, 3), 2, "SAME", 1),                    # 8 per group, stride 2
    (7, 9, 2, 16, 16, (3, 3), 1, "VALID", 1),                 # 16 per group, VALID
    (11, 10, 2, 32, 24, (3, 3), (2, 1), ((1, 2), (0, 3)), 1),  # 32 -> 24 per group, explicit
    (10, 9, 2, 64, 64, (3, 3), 1, "SAME", 1),                 # 64 per group
    (7, 6, 1, 40, 72, (3, 3), 1, "SAME", 1),                  # dense, odd widths
    (13, 11, 3, 5, 7, (5, 5), 1, "SAME", 2),                  # dilation 2, odd channels
    (10, 11, 2, 12, 20, (3, 2), 3, ((2, -1), (1, 1)), (1, 2)),  # negative pad, stride 3
    (6, 5, 3, 2, 2, (1, 1), 1, "SAME", 1),                    # 1x1
    (7, 6, 1, 4, 6, (1, 1), 2, ((1, 0), (2, 1)), 1),          # 1x1, strided, padded
    (2, 3, 4, 8, 8, (3, 3), 1, "SAME", 1),                    # image smaller than kernel
    (9, 9, 2, 8, 16, (7, 7), 2, "SAME", 1),                   # large kernel, stride 2
    (1, 3, 2, 1, 1, (2, 2), 1, ((1, 1), (1, 1)), 2),          # every row tap in the padding
    (5, 30, 1, 3, 17, (3, 3), (1, 4), ((0, 0), (5, 5)), (1, 3)),  # wide, stride 4 dilation 3
    (9, 8, 70, 1, 1, (3, 3), 2, "SAME", 1),                   # depthwise, channel tails, stride 2
    (10, 9, 37, 1, 1, (5, 3), (1, 2), ((2, -1), (3, 1)), (2, 1)),  # depthwise, dilated, cropped
    (3, 4, 19, 1, 1, (3, 3), 1, ((2, 2), (0, 0)), 1),         # depthwise, rows with no tap
]


@needs_ext
@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_values_and_gradients_match_xla(case):
  h, w, g, gi, go, kernel, strides, padding, dilation = case
  x, k = _inputs(2, h, w, g, gi, go, kernel)
  _check_against_xla(x, k, g, strides, padding, dilation)


def _cpu_isas():
  if STATUS.reason is not None:
    return list(ffi.ISAS)
  supported = []
  for isa in ffi.ISAS:
    try:
      ffi.set_isa(isa)
      supported.append(isa)
    except ValueError:
      pass
  ffi.set_isa(STATUS.isa)
  return supported


@needs_ext
@pytest.mark.parametrize("isa", _cpu_isas())
@pytest.mark.parametrize("case", [CASES[2], CASES[4], CASES[6], CASES[8], CASES[12], CASES[15],
                                  CASES[16]],
                         ids=["g8s2", "explicit", "dense", "negpad", "k7", "dw", "dw-dilated"])
def test_every_instruction_set_matches_xla(isa, case):
  h, w, g, gi, go, kernel, strides, padding, dilation = case
  x, k = _inputs(2, h, w, g, gi, go, kernel, seed=3)
  ffi.set_isa(isa)
  try:
    assert ffi.active_isa() == isa
    _check_against_xla(x, k, g, strides, padding, dilation, msg=isa)
  finally:
    ffi.set_isa(STATUS.isa)


@needs_ext
def test_closed_form_all_ones():
  """All-ones 3x3 kernel, 4 channels per group, on ones: 4 x (9 inside, 6 edges, 4 corners)."""
  x = jnp.ones((1, 4, 5, 8))
  k = jnp.ones((3, 3, 4, 8))
  want = 4 * np.array([[4, 6, 6, 6, 4], [6, 9, 9, 9, 6], [6, 9, 9, 9, 6], [4, 6, 6, 6, 4]])
  y = grouped_conv(x, k, feature_group_count=2, impl="ffi")
  for c in range(8):
    np.testing.assert_array_equal(np.asarray(y[0, :, :, c]), want)


@needs_ext
def test_grouped_equals_per_group_dense_concatenated():
  x, k = _inputs(2, 9, 8, 4, 8, 8, (3, 3))
  y = grouped_conv(x, k, feature_group_count=4, impl="ffi")
  parts = [grouped_conv(x[..., 8 * g:8 * g + 8], k[..., 8 * g:8 * g + 8], impl="ffi")
           for g in range(4)]
  _assert_close(y, jnp.concatenate(parts, -1))


@needs_ext
def test_deterministic_across_calls():
  """The kernel gradient sums fixed slices in a fixed order: equal bits call after call."""
  x, k = _inputs(4, 12, 12, 2, 16, 16, (3, 3))
  grad = jax.jit(jax.grad(
      lambda a, b: jnp.sum(grouped_conv(a, b, feature_group_count=2, impl="ffi") ** 2), (0, 1)))
  first = [np.asarray(g) for g in grad(x, k)]
  for _ in range(3):
    for a, b in zip(first, grad(x, k)):
      np.testing.assert_array_equal(a, np.asarray(b))


@needs_ext
@pytest.mark.parametrize("case", [CASES[2], CASES[6], CASES[15], CASES[16]],
                         ids=["g8s2", "dense", "dw", "dw-dilated"])
def test_same_bits_on_xla_pool_and_own_threads(case):
  """Parallel loops run on XLA's intra-op pool inside a program (the default) or on the
  extension's own threads: the work is split the same way, so the bits are the same."""
  h, w, g, gi, go, kernel, strides, padding, dilation = case
  x, k = _inputs(8, 4 * h, 4 * w, g, gi, go, kernel, seed=5)
  kwargs = dict(feature_group_count=g, strides=strides, padding=padding, dilation=dilation)

  @jax.jit
  def fn(a, b):
    y, vjp = jax.vjp(lambda a, b: grouped_conv(a, b, impl="ffi", **kwargs), a, b)
    return (y, *vjp(jnp.cos(y)))

  before = ffi.use_xla_pool(True)
  try:
    on_xla = [np.asarray(v) for v in fn(x, k)]
    ffi.use_xla_pool(False)
    own = [np.asarray(v) for v in fn(x, k)]
  finally:
    ffi.use_xla_pool(before)
  for a, b in zip(on_xla, own):
    np.testing.assert_array_equal(a, b)


@needs_ext
def test_vmap_over_input_kernel_and_both():
  x, k = _inputs(2, 7, 8, 2, 8, 8, (3, 3))
  xs = jnp.stack([x, 2 * x, -x])
  ks = jnp.stack([k, 0.5 * k, -k])
  conv = lambda a, b: grouped_conv(a, b, feature_group_count=2, strides=(2, 1), impl="ffi")
  ref = lambda a, b: _reference(a, b, 2, (2, 1), "SAME", (1, 1))
  for axes, args in (((0, None), (xs, k)), ((None, 0), (x, ks)), ((0, 0), (xs, ks))):
    _assert_close(jax.jit(jax.vmap(conv, axes))(*args), jax.vmap(ref, axes)(*args),
                  msg=str(axes))


@needs_ext
def test_nested_vmap_and_grad_of_vmap():
  x, k = _inputs(2, 6, 6, 2, 8, 4, (3, 3))
  xs = jnp.stack([jnp.stack([x, -x]), jnp.stack([2 * x, x])])  # (2, 2, N, H, W, C)
  conv = lambda a, b: grouped_conv(a, b, feature_group_count=2, impl="ffi")
  ref = lambda a, b: _reference(a, b, 2, (1, 1), "SAME", (1, 1))
  nested = jax.vmap(jax.vmap(conv, (0, None)), (0, None))
  nested_ref = jax.vmap(jax.vmap(ref, (0, None)), (0, None))
  _assert_close(nested(xs, k), nested_ref(xs, k))
  loss = lambda f: (lambda a, b: jnp.sum(jnp.sin(jax.vmap(f, (0, None))(a, b))))
  got = jax.jit(jax.grad(loss(conv), (0, 1)))(xs[0], k)
  want = jax.grad(loss(ref), (0, 1))(xs[0], k)
  for g, w in zip(got, want):
    _assert_close(g, w)


@needs_ext
def test_vmap_of_grad_gives_per_example_kernel_gradients():
  x, k = _inputs(3, 6, 7, 2, 8, 8, (3, 3))
  per_example = lambda f: jax.vmap(jax.grad(lambda a, b: jnp.sum(f(a[None], b) ** 2), 1),
                                   (0, None))
  conv = lambda a, b: grouped_conv(a, b, feature_group_count=2, impl="ffi")
  ref = lambda a, b: _reference(a, b, 2, (1, 1), "SAME", (1, 1))
  _assert_close(jax.jit(per_example(conv))(x, k), per_example(ref)(x, k))


@needs_ext
def test_matches_torch_conv2d_groups():
  torch = pytest.importorskip("torch", reason="PyTorch is the independent reference")
  for groups, gi, go, stride, pad, dil in ((8, 8, 8, 1, 1, 1), (2, 16, 32, 2, 2, 2),
                                           (1, 24, 16, 1, 0, 1), (40, 1, 1, 2, 1, 1)):
    x, k = _inputs(2, 11, 9, groups, gi, go, (3, 3))
    xt = torch.from_numpy(np.array(x)).permute(0, 3, 1, 2).requires_grad_(True)
    kt = torch.from_numpy(np.array(k)).permute(3, 2, 0, 1).contiguous().requires_grad_(True)
    yt = torch.nn.functional.conv2d(xt, kt, stride=stride, padding=pad, dilation=dil,
                                    groups=groups)
    (yt ** 2).sum().backward()
    fn = lambda a, b: grouped_conv(a, b, feature_group_count=groups, strides=stride,
                                   padding=pad, dilation=dil, impl="ffi")
    y = fn(x, k)
    dx, dk = jax.grad(lambda a, b: jnp.sum(fn(a, b) ** 2), (0, 1))(x, k)
    _assert_close(y, yt.detach().permute(0, 2, 3, 1).numpy(), 1e-5)
    _assert_close(dx, xt.grad.permute(0, 2, 3, 1).numpy(), 1e-5)
    _assert_close(dk, kt.grad.permute(2, 3, 1, 0).numpy(), 1e-5)


@needs_ext
def test_autotune_may_choose_ffi(tmp_path, monkeypatch):
  """'ffi' is one more measured candidate of every computation where it is supported."""
  from sepconv.conv import choice, measure  # noqa: PLC0415
  x, k = _inputs(2, 16, 16, 4, 16, 16, (3, 3))
  geom = conv_geometry(x, k, feature_group_count=4)
  for computation in COMPUTATIONS:
    assert "ffi" in choice.candidates(geom, computation, "cpu")
    assert "ffi" not in choice.candidates(geom, computation, "tpu")
  times = measure.measure(geom, "forward", ["ffi", "xla"], repeats=1)
  assert set(times) == {"ffi", "xla"} and all(t > 0 for t in times.values())


def test_unsupported_dtype_and_backend_say_why():
  x, k = _inputs(1, 5, 5, 2, 8, 8, (3, 3))
  geom = conv_geometry(x.astype(jnp.bfloat16), k.astype(jnp.bfloat16), feature_group_count=2)
  reason = ffi.ffi_support(geom)
  assert reason is not None
  if STATUS.reason is None:
    assert "dtype (=bfloat16) must be float32" in reason
  with pytest.raises(ValueError, match=r"impl \(='ffi'\) does not support"):
    grouped_conv(x.astype(jnp.bfloat16), k.astype(jnp.bfloat16), feature_group_count=2,
                 impl="ffi")


def test_extension_built_where_required():
  """With SEPCONV_REQUIRE_EXT=1 (CI of the extension build), the kernels must run."""
  if os.environ.get("SEPCONV_REQUIRE_EXT", "").strip() not in ("1", "true", "yes"):
    pytest.skip("SEPCONV_REQUIRE_EXT is not set")
  assert STATUS.reason is None, STATUS.reason


def test_newer_ffi_api_than_jaxlib_is_refused_before_registering(monkeypatch):
  """A library built for a newer XLA FFI API than this jaxlib's is reported, not loaded."""
  if ffi.library_path() is None or ffi._jax_reason() is not None:
    pytest.skip("needs the built library and jax.ffi")
  monkeypatch.delenv(ffi.DISABLE_ENV, raising=False)
  monkeypatch.setattr(ffi, "runtime_api_version", lambda: (0, 0))
  ffi.status.cache_clear()
  try:
    st = ffi.status()
    assert st.reason is not None and "newer than the installed jaxlib" in st.reason
    assert st.api_version is not None and st.runtime_api_version == (0, 0)
  finally:
    monkeypatch.undo()
    ffi.status.cache_clear()
    assert (ffi.status().reason is None) == (STATUS.reason is None)


_FALLBACK_SCRIPT = r"""
import json, jax, jax.numpy as jnp, numpy as np
from sepconv.conv import IMPLS, conv_geometry, ffi, grouped_conv
from sepconv.conv.table import COMPUTATIONS, IMPL_TABLE
x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 8, 8, 16)), jnp.float32)
k = jnp.asarray(np.random.default_rng(1).standard_normal((3, 3, 4, 16)), jnp.float32)
geom = conv_geometry(x, k, feature_group_count=4)
try:
  grouped_conv(x, k, feature_group_count=4, impl="ffi")
  raised = None
except ValueError as e:
  raised = str(e)
f = lambda impl: (lambda a, b: jnp.sum(grouped_conv(a, b, feature_group_count=4, impl=impl) ** 2))
auto = jax.grad(f("auto"), (0, 1))(x, k)
xla = jax.grad(f("xla"), (0, 1))(x, k)
print(json.dumps({
    "reason": ffi.status().reason, "support": IMPL_TABLE["ffi"].support(geom),
    "raised": raised, "in_impls": "ffi" in IMPLS,
    "auto_err": max(float(jnp.abs(a - b).max() / jnp.abs(b).max()) for a, b in zip(auto, xla))}))
"""


@pytest.mark.parametrize("env, expect", [
    ({"SEPCONV_DISABLE_EXT": "1"}, "extension disabled: SEPCONV_DISABLE_EXT=1"),
    ({"SEPCONV_FFI_LIBRARY": "/nonexistent/_sepconv_ffi.so"}, "extension not built"),
], ids=["disabled", "absent"])
def test_fallback_without_extension(env, expect, tmp_path):
  """Without the extension 'ffi' is unsupported with a reason; everything else works."""
  full = {name: value for name, value in os.environ.items()
          if name not in ("SEPCONV_REQUIRE_EXT", ffi.DISABLE_ENV, ffi.LIBRARY_ENV)}
  full.update(SEPCONV_CACHE_DIR=str(tmp_path), SEPCONV_AUTOTUNE="0", **env)
  out = subprocess.run([sys.executable, "-c", _FALLBACK_SCRIPT], capture_output=True, text=True,
                       timeout=300, env=full, check=True).stdout.strip().splitlines()[-1]
  result = json.loads(out)
  assert result["reason"].startswith(expect)
  assert result["support"] == result["reason"]
  assert result["raised"] is not None and expect in result["raised"] and "'ffi'" in result["raised"]
  assert result["in_impls"]
  assert result["auto_err"] < 1e-5


def test_impl_entry_has_its_own_gradients():
  impl = IMPL_TABLE["ffi"]
  assert impl.input_grad is ffi.ffi_input_grad and impl.kernel_grad is ffi.ffi_kernel_grad
