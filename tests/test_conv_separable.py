"""``separable_conv``: every implementation equals the two native convolutions."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from sepconv.conv import SEPARABLE_IMPLS, autotune, separable_conv
from sepconv.conv import separable as separable_lib


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path, monkeypatch, request):
  monkeypatch.setenv("SEPCONV_CACHE_DIR", str(tmp_path))
  monkeypatch.setattr(autotune, "MIN_MEASURE_MACS", 0)  # measure even these tiny convs
  # Measuring is exercised on one case; the others take the heuristic (same numbers).
  if "mobilenet-auto" not in request.node.name:
    monkeypatch.setenv("SEPCONV_AUTOTUNE", "0")
  autotune.clear_memory_cache()
  yield
  autotune.clear_memory_cache()


def _reference(x, ks, kp, groups, pw_groups, strides, padding, dilation):
  dn = ("NHWC", "HWIO", "NHWC")
  u = lax.conv_general_dilated(x, ks, strides, padding, rhs_dilation=dilation,
                               dimension_numbers=dn, feature_group_count=groups)
  return lax.conv_general_dilated(u, kp, (1, 1), "VALID", dimension_numbers=dn,
                                  feature_group_count=pw_groups)


# (N, H, W, C_in, groups, multiplier, C_out, pointwise groups, strides, padding, dilation)
CASES = [
    (4, 9, 8, 8, 8, 1, 12, 1, (1, 1), "SAME", (1, 1)),      # MobileNet block
    (2, 7, 9, 6, 3, 2, 8, 2, (2, 2), "VALID", (1, 2)),      # grouped both, strided
    (3, 5, 5, 4, 4, 2, 4, 4, (1, 1), ((1, 0), (2, 1)), (1, 1)),  # multiplier, explicit pads
]


@pytest.mark.parametrize("impl", SEPARABLE_IMPLS)
@pytest.mark.parametrize("case", CASES, ids=["mobilenet", "grouped", "multiplier"])
def test_matches_two_native_convs(impl, case):
  n, h, w, c, g, m, cout, gp, strides, padding, dilation = case
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((n, h, w, c)), jnp.float32)
  ks = jnp.asarray(rng.standard_normal((3, 3, c // g, c * m)) / 3, jnp.float32)
  kp = jnp.asarray(rng.standard_normal((1, 1, c * m // gp, cout)) / 4, jnp.float32)
  fn = lambda a, b, d: separable_conv(a, b, d, spatial_group_count=g, pointwise_group_count=gp,
                                      strides=strides, padding=padding, dilation=dilation,
                                      impl=impl)
  ref = lambda a, b, d: _reference(a, b, d, g, gp, strides, padding, dilation)
  y, vjp = jax.vjp(fn, x, ks, kp)
  y_ref, vjp_ref = jax.vjp(ref, x, ks, kp)
  np.testing.assert_allclose(np.asarray(y), np.asarray(y_ref), rtol=1e-5, atol=1e-5)
  dy = jnp.asarray(rng.standard_normal(y.shape), jnp.float32)
  for got, want in zip(vjp(dy), vjp_ref(dy)):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-4)


def test_fused_chunks_divide_the_batch():
  from sepconv.conv.spec import make_spec  # noqa: PLC0415
  spec = make_spec((32, 56, 56, 128), (3, 3, 1, 128), "float32", feature_group_count=128,
                   strides=1, padding="SAME", dilation=1)
  b = separable_lib.chunk_images(spec)
  assert 32 % b == 0 and b * 56 * 56 * 128 * 4 <= separable_lib.CHUNK_BYTES


def test_errors_name_the_value():
  x = jnp.zeros((1, 6, 6, 32))
  ks, kp = jnp.zeros((3, 3, 1, 32)), jnp.zeros((1, 1, 32, 8))
  with pytest.raises(ValueError, match="'nope'"):
    separable_conv(x, ks, kp, spatial_group_count=32, impl="nope")
  with pytest.raises(ValueError, match=r"pointwise kernel shape \(=\(3, 3, 32, 8\)\)"):
    separable_conv(x, ks, jnp.zeros((3, 3, 32, 8)), spatial_group_count=32, impl="unfused")
  wide = jnp.zeros((3, 3, 16, 32))
  with pytest.raises(ValueError, match=r"fused.*channels per group \(=16\)"):
    separable_conv(x, wide, kp, spatial_group_count=2, impl="fused")
