"""Every convolution implementation equals the native one, values and gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax import lax

from sepconv.conv import IMPLS, conv_geometry, grouped_conv
from sepconv.conv.table import IMPL_TABLE

CONCRETE = tuple(n for n in IMPLS if n != "auto")


def _reference(x, k, groups, strides, padding, dilation):
  return lax.conv_general_dilated(
      x, k, strides, padding, rhs_dilation=dilation,
      dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=groups)


def _inputs(batch, h, w, groups, group_in, group_out, kernel, dtype, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((batch, h, w, groups * group_in)).astype(np.float32)
  k = rng.standard_normal(tuple(kernel) + (group_in, groups * group_out)).astype(np.float32)
  return jnp.asarray(x, dtype), jnp.asarray(k / np.sqrt(group_in * np.prod(kernel)), dtype)


def _check(impl, x, k, groups, strides, padding, dilation, tol):
  """Forward, input gradient and kernel gradient of ``impl`` against native XLA."""
  kwargs = dict(feature_group_count=groups, strides=strides, padding=padding, dilation=dilation)
  geom = conv_geometry(x, k, **kwargs)
  if impl != "auto" and IMPL_TABLE[impl].support(geom) is not None:
    with pytest.raises(ValueError, match=impl):
      grouped_conv(x, k, impl=impl, **kwargs)
    return False
  if impl != "auto" and not IMPL_TABLE[impl].runs_on("cpu"):  # a TPU or GPU kernel, named
    with pytest.raises(ValueError, match=rf"impl \(='{impl}'\) can be lowered for .* not for 'cpu'"):
      grouped_conv(x, k, impl=impl, **kwargs)
    return False
  pads = padding if isinstance(padding, str) else geom.pads
  ref_fn = lambda a, b: _reference(a.astype(jnp.float32), b.astype(jnp.float32), groups,
                                   geom.strides, pads, geom.dilation)
  fn = lambda a, b: grouped_conv(a, b, impl=impl, **kwargs)
  y, vjp = jax.vjp(fn, x, k)
  y_ref, vjp_ref = jax.vjp(ref_fn, x, k)
  assert y.shape == y_ref.shape and y.dtype == x.dtype
  dy = jnp.asarray(np.random.default_rng(1).standard_normal(y.shape), x.dtype)
  dx, dk = vjp(dy)
  dx_ref, dk_ref = vjp_ref(dy.astype(jnp.float32))
  assert dx.dtype == x.dtype and dk.dtype == k.dtype
  for got, want in ((y, y_ref), (dx, dx_ref), (dk, dk_ref)):
    got, want = np.asarray(got, np.float32), np.asarray(want, np.float32)
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, atol=tol * scale, rtol=tol)
  return True


# (H, W, groups, group_in, group_out, kernel, strides, padding, dilation)
CASES = [
    (9, 9, 6, 1, 1, (3, 3), 1, "SAME", 1),            # depthwise
    (8, 7, 4, 1, 3, (3, 3), 1, "SAME", 1),            # depth multiplier 3
    (9, 8, 4, 2, 2, (3, 3), 2, "SAME", 1),            # narrow groups, stride 2
    (7, 9, 3, 4, 2, (3, 3), 1, "VALID", 1),           # grouped, wider out
    (10, 9, 2, 3, 3, (5, 5), 1, "SAME", 2),           # dilation 2
    (6, 7, 5, 1, 1, (2, 3), (2, 1), ((1, 2), (0, 3)), 1),  # even kernel, explicit pads
    (5, 6, 2, 2, 1, (3, 3), 3, ((2, -1), (1, 1)), (1, 2)),  # negative pad, stride 3
    (7, 7, 1, 5, 4, (3, 3), 1, "SAME", 1),            # dense
    (6, 5, 3, 2, 2, (1, 1), 1, "SAME", 1),            # grouped 1x1
    (7, 6, 1, 4, 6, (1, 1), 2, ((1, 0), (2, 1)), 1),  # 1x1, strided, padded
    (2, 3, 4, 1, 1, (3, 3), 1, "SAME", 1),            # image smaller than kernel
    (9, 9, 4, 1, 2, (7, 7), 2, "SAME", 1),            # large kernel, stride 2
    (1, 3, 2, 1, 1, (2, 2), 1, ((1, 1), (1, 1)), 2),  # every row tap in the padding
]


@pytest.mark.parametrize("impl", CONCRETE)
@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_impl_matches_xla_float32(impl, case):
  h, w, g, gi, go, kernel, strides, padding, dilation = case
  x, k = _inputs(2, h, w, g, gi, go, kernel, jnp.float32)
  _check(impl, x, k, g, strides, padding, dilation, tol=2e-5)


@pytest.mark.parametrize("impl", CONCRETE)
@pytest.mark.parametrize("case", [CASES[0], CASES[2], CASES[8]], ids=["dw", "grouped", "1x1"])
def test_impl_matches_xla_bfloat16(impl, case):
  h, w, g, gi, go, kernel, strides, padding, dilation = case
  x, k = _inputs(2, h, w, g, gi, go, kernel, jnp.bfloat16)
  _check(impl, x, k, g, strides, padding, dilation, tol=3e-2)


@settings(max_examples=12, deadline=None)
@given(
    h=st.integers(1, 9), w=st.integers(1, 9), groups=st.integers(1, 4),
    group_in=st.sampled_from([1, 1, 2, 3]), group_out=st.integers(1, 3),
    kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 2),
    dh=st.integers(1, 2), padding=st.sampled_from(["SAME", "VALID", "explicit"]),
    impl=st.sampled_from(["shift", "dense", "xla_noynn", "pointwise", "supergroup", "im2col"]),
    seed=st.integers(0, 99))
def test_property_random_shapes(h, w, groups, group_in, group_out, kh, kw, sh, sw, dh, padding,
                                impl, seed):
  rng = np.random.default_rng(seed)
  if padding == "explicit":
    padding = tuple((int(rng.integers(-1, 3)), int(rng.integers(-1, 3))) for _ in range(2))
  x, k = _inputs(2, h, w, groups, group_in, group_out, (kh, kw), jnp.float32, seed)
  try:
    conv_geometry(x, k, feature_group_count=groups, strides=(sh, sw), padding=padding,
              dilation=(dh, 1))
  except ValueError:
    return  # empty output: not a valid convolution
  _check(impl, x, k, groups, (sh, sw), padding, (dh, 1), tol=2e-5)


def test_closed_form_all_ones():
  """All-ones 3x3 depthwise kernel on all-ones input: 9 inside, 6 on edges, 4 in corners."""
  x = jnp.ones((1, 4, 5, 3))
  k = jnp.ones((3, 3, 1, 3))
  want = np.array([[4, 6, 6, 6, 4], [6, 9, 9, 9, 6], [6, 9, 9, 9, 6], [4, 6, 6, 6, 4]], np.float32)
  geom = conv_geometry(x, k, feature_group_count=3)
  for impl in IMPLS:
    if impl != "auto" and (IMPL_TABLE[impl].support(geom) is not None
                           or not IMPL_TABLE[impl].runs_on("cpu")):
      continue  # 'pointwise' (3x3), an optional extension not built, a TPU or GPU kernel
    y = grouped_conv(x, k, feature_group_count=3, impl=impl)
    np.testing.assert_allclose(np.asarray(y[0, :, :, 1]), want, err_msg=impl)


def test_grouped_equals_per_group_dense_concatenated():
  x, k = _inputs(2, 6, 6, 3, 2, 2, (3, 3), jnp.float32)
  y = grouped_conv(x, k, feature_group_count=3, impl="shift")
  parts = [_reference(x[..., 2 * g:2 * g + 2], k[..., 2 * g:2 * g + 2], 1, (1, 1), "SAME", (1, 1))
           for g in range(3)]
  np.testing.assert_allclose(np.asarray(y), np.asarray(jnp.concatenate(parts, -1)), atol=1e-5)


def test_unknown_impl_names_the_value():
  x, k = _inputs(1, 4, 4, 2, 1, 1, (3, 3), jnp.float32)
  with pytest.raises(ValueError, match="'nope'"):
    grouped_conv(x, k, feature_group_count=2, impl="nope")


def test_unsupported_configuration_says_why():
  x, k = _inputs(1, 4, 4, 1, 16, 4, (3, 3), jnp.float32)
  with pytest.raises(ValueError, match=r"shift.*channels per group \(=16\)"):
    grouped_conv(x, k, impl="shift")
  with pytest.raises(ValueError, match=r"pointwise.*kernel size \(=\(3, 3\)\)"):
    grouped_conv(x, k, impl="pointwise")


@pytest.mark.parametrize("kwargs, match", [
    (dict(feature_group_count=3), r"in_channels \(=4\) must be divisible by feature_group_count"),
    (dict(feature_group_count=0), r"feature_group_count \(=0\)"),
    (dict(strides=0), r"strides \(=\(0, 0\)\)"),
    (dict(padding="FULL"), r"padding \(='FULL'\)"),
    (dict(padding=((1, 1),)), r"padding .* two \(low, high\) pairs"),
    (dict(padding="VALID", dilation=4), r"output size"),
])
def test_bad_arguments_raise_value_error(kwargs, match):
  x, k = _inputs(1, 5, 5, 1, 4, 4, (3, 3), jnp.float32)
  with pytest.raises(ValueError, match=match):
    grouped_conv(x, k, impl="xla", **kwargs)


def test_kernel_shape_and_dtype_mismatch():
  x, k = _inputs(1, 5, 5, 2, 2, 2, (3, 3), jnp.float32)
  with pytest.raises(ValueError, match=r"kernel input channels \(=2\) must equal"):
    grouped_conv(x, k, feature_group_count=1, impl="xla")
  with pytest.raises(ValueError, match=r"kernel dtype \(=bfloat16\)"):
    grouped_conv(x, k.astype(jnp.bfloat16), feature_group_count=2, impl="xla")


def test_matches_torch_conv2d_groups():
  torch = pytest.importorskip("torch", reason="PyTorch is the independent reference")
  for groups, gi, go, stride, pad, dil in ((8, 1, 1, 1, 1, 1), (4, 2, 3, 2, 2, 2)):
    x, k = _inputs(2, 9, 8, groups, gi, go, (3, 3), jnp.float32)
    xt = torch.from_numpy(np.array(x)).permute(0, 3, 1, 2)
    kt = torch.from_numpy(np.array(k)).permute(3, 2, 0, 1).contiguous()
    want = torch.nn.functional.conv2d(xt, kt, stride=stride, padding=pad, dilation=dil,
                                      groups=groups).permute(0, 2, 3, 1).numpy()
    for impl in ("shift", "dense", "xla_noynn"):
      y = grouped_conv(x, k, feature_group_count=groups, strides=stride, padding=pad,
                       dilation=dil, impl=impl)
      np.testing.assert_allclose(np.asarray(y), want, atol=1e-5, err_msg=impl)
