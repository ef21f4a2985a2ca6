"""Projection of a standard conv onto the spectrum: optimality, exactness, monotonicity, layout."""

from __future__ import annotations

import flax.linen as nn
import jax
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from jax import lax

from sepconv.analysis import (compose, decomposition_errors, grouped_to_dense, project,
                              project_grouped, project_separable)


def _kernel(seed, k=3, c_in=8, c_out=12):
  return np.random.default_rng(seed).normal(size=(k, k, c_in, c_out)).astype(np.float32)


def _conv(x, w, groups=1):
  return lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                  feature_group_count=groups, precision=lax.Precision.HIGHEST)


def _blocks(w, g):
  kh, kw, c_in, c_out = w.shape
  return [w[:, :, i * g:(i + 1) * g, :].reshape(kh * kw * g, c_out).astype(np.float64)
          for i in range(c_in // g)]


def _rel(w, w_hat):
  return np.linalg.norm(w.astype(np.float64) - w_hat) / np.linalg.norm(w.astype(np.float64))


@pytest.mark.parametrize("g,c_out", [(1, 12), (2, 12), (1, 4), (4, 5)])
def test_exact_once_multiplier_reaches_min_taps_outputs(g, c_out):
  w = _kernel(0, c_out=c_out)
  m = min(9, c_out)
  assert project_separable(w, g, m).rel_error < 1e-12
  if g == 1:  # one fewer component per channel loses a non-zero singular value
    assert project_separable(w, g, m - 1).rel_error > 1e-3


def test_error_is_discarded_singular_energy_per_group():
  w = _kernel(1)
  for g, m in [(1, 1), (1, 3), (2, 2), (4, 1)]:
    tail = sum(np.sum(np.linalg.svd(b, compute_uv=False)[g * m:] ** 2) for b in _blocks(w, g))
    want = np.sqrt(tail) / np.linalg.norm(w.astype(np.float64))
    assert project_separable(w, g, m).rel_error == pytest.approx(want, rel=1e-9)


def test_plain_grouped_error_is_off_block_energy():
  w = _kernel(2, c_in=8, c_out=16)
  mask = np.zeros((8, 16), bool)
  for i in range(4):  # group size 2 -> 4 groups of 2 inputs and 4 outputs
    mask[2 * i:2 * i + 2, 4 * i:4 * i + 4] = True
  want = np.sqrt(np.sum(w.astype(np.float64)[:, :, ~mask] ** 2)) / np.linalg.norm(w.astype(np.float64))
  proj = project_grouped(w, 2)
  assert proj.rel_error == pytest.approx(want, rel=1e-9)
  assert proj.spatial.shape == (3, 3, 2, 16) and proj.feature_group_count == 4
  assert project_grouped(w, 8).rel_error == 0.0  # one group: the standard conv itself


def test_errors_never_increase_with_multiplier():
  w = _kernel(3)
  for g in (1, 2, 4):
    errors = [project_separable(w, g, m).rel_error for m in range(1, 10)]
    assert all(b <= a + 1e-12 for a, b in zip(errors, errors[1:]))
    assert errors[0] > errors[-1]


@pytest.mark.parametrize("m", [1, 2, 3])
def test_errors_never_increase_along_a_divisibility_chain(m):
  w = _kernel(4, c_in=16, c_out=16)
  chain = (1, 2, 4, 8, 16)
  sep = [project_separable(w, g, m).rel_error for g in chain]
  plain = [project_grouped(w, g).rel_error for g in chain]
  for errors in (sep, plain):
    assert all(b <= a + 1e-12 for a, b in zip(errors, errors[1:]))
  assert plain[-1] == 0.0 and plain[0] > sep[0]


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), k=st.sampled_from([1, 3, 5]), c_in=st.sampled_from([2, 4, 8]),
       c_out=st.integers(1, 12))
def test_monotone_in_m_and_g_for_random_shapes(seed, k, c_in, c_out):
  w = _kernel(seed, k=k, c_in=c_in, c_out=c_out)
  chain = [g for g in (1, 2, 4, 8) if g <= c_in]
  grid = [[project_separable(w, g, m).rel_error for m in (1, 2, 3)] for g in chain]
  grid = np.array(grid)
  assert np.all(np.diff(grid, axis=0) <= 1e-12) and np.all(np.diff(grid, axis=1) <= 1e-12)
  assert project_separable(w, 1, min(k * k, c_out)).rel_error < 1e-12


def _random_subspace_error(w, g, m, rng):
  """Best pointwise for random orthonormal spatial filters (least squares)."""
  w_hat = np.zeros(w.shape)
  for i, block in enumerate(_blocks(w, g)):
    q, _ = np.linalg.qr(rng.normal(size=(block.shape[0], g * m)))
    w_hat[:, :, i * g:(i + 1) * g, :] = (q @ (q.T @ block)).reshape(w.shape[0], w.shape[1], g, -1)
  return _rel(w, w_hat)


def _tap_truncation_error(w, g, m):
  """Keep the g*m highest-energy (tap, channel) rows of each group, drop the rest."""
  w_hat = np.zeros(w.shape)
  for i, block in enumerate(_blocks(w, g)):
    keep = np.argsort(-np.sum(block ** 2, axis=1))[:g * m]
    kept = np.zeros_like(block)
    kept[keep] = block[keep]
    w_hat[:, :, i * g:(i + 1) * g, :] = kept.reshape(w.shape[0], w.shape[1], g, -1)
  return _rel(w, w_hat)


def test_svd_beats_random_and_truncation_baselines():
  w = _kernel(5, c_in=8, c_out=32)
  rng = np.random.default_rng(0)
  for g, m in [(1, 1), (1, 2), (2, 1), (4, 1)]:
    svd = project_separable(w, g, m).rel_error
    assert svd < _random_subspace_error(w, g, m, rng) - 1e-3
    assert svd < _tap_truncation_error(w, g, m) - 1e-3


def test_factors_compose_with_real_convolutions():
  w = _kernel(6)
  x = np.random.default_rng(7).normal(size=(2, 7, 7, 8)).astype(np.float32)
  for g, m in [(1, 1), (2, 3), (4, 2)]:
    proj = project_separable(w, g, m)
    assert proj.spatial.shape == (3, 3, g, 8 * m) and proj.pointwise_kernel.shape == (1, 1, 8 * m, 12)
    assert proj.spatial.dtype == np.float32
    two_stage = _conv(_conv(x, proj.spatial, proj.feature_group_count), proj.pointwise_kernel)
    np.testing.assert_allclose(two_stage, _conv(x, proj.kernel), atol=2e-4)
  exact = project_separable(w, 1, 9)
  two_stage = _conv(_conv(x, exact.spatial, 8), exact.pointwise_kernel)
  np.testing.assert_allclose(two_stage, _conv(x, w), atol=2e-4)


def test_factors_load_into_flax_conv():
  w = _kernel(8)
  proj = project_separable(w, 2, 2)
  x = np.random.default_rng(9).normal(size=(1, 5, 5, 8)).astype(np.float32)
  spatial = nn.Conv(16, (3, 3), feature_group_count=proj.feature_group_count, use_bias=False,
                    precision=lax.Precision.HIGHEST)
  pointwise = nn.Conv(12, (1, 1), use_bias=False, precision=lax.Precision.HIGHEST)
  mid = spatial.apply({"params": {"kernel": proj.spatial}}, x)
  out = pointwise.apply({"params": {"kernel": proj.pointwise_kernel}}, mid)
  np.testing.assert_allclose(out, _conv(x, proj.kernel), atol=2e-4)
  shapes = jax.tree.map(np.shape, spatial.init(jax.random.key(0), x)["params"])
  assert shapes["kernel"] == proj.spatial.shape


def test_spare_filters_are_live_and_leave_the_composition_unchanged():
  w = _kernel(10, c_out=4)  # block rank <= 4 < g * m = 6
  proj = project_separable(w, 1, 6)
  assert proj.rel_error < 1e-12
  d = proj.spatial.reshape(9, 8, 6)
  p = proj.pointwise_kernel[0, 0].reshape(8, 6, 4)
  assert np.all(np.linalg.norm(d, axis=0) > 0)  # no dead spatial filters
  np.testing.assert_array_equal(p[:, 4:], 0.0)


def test_compose_and_grouped_to_dense_agree_with_convolution():
  rng = np.random.default_rng(11)
  spatial = rng.normal(size=(3, 3, 2, 8)).astype(np.float32)
  x = rng.normal(size=(1, 6, 6, 8)).astype(np.float32)
  dense = grouped_to_dense(spatial, 4)
  np.testing.assert_allclose(_conv(x, dense), _conv(x, spatial, 4), atol=1e-4)
  np.testing.assert_allclose(compose(spatial, None, 4), dense, atol=0)


def test_decomposition_errors_record_entries():
  w = _kernel(12, c_in=4, c_out=8)
  entries = decomposition_errors(w, [(1, 1, True), (2, 5, False), (4, 1, False)])
  assert entries[0] == {"group_size": 1, "depth_multiplier": 1, "pointwise": True,
                        "rel_error": project(w, group_size=1).rel_error}
  assert entries[1]["depth_multiplier"] is None and entries[2]["rel_error"] == 0.0


def test_bad_input_raises_value_error():
  w = _kernel(13, c_in=6, c_out=9)
  with pytest.raises(ValueError, match=r"in_channels \(=6\) must be divisible by group_size \(=4\)"):
    project_separable(w, 4, 1)
  with pytest.raises(ValueError, match=r"out_channels \(=9\)"):
    project_grouped(w, 3)
  with pytest.raises(ValueError, match="depth_multiplier"):
    project_separable(w, 1, 0)
  with pytest.raises(ValueError, match="HWIO"):
    project_grouped(w[0], 1)
  with pytest.raises(ValueError, match="all zeros"):
    project_grouped(np.zeros_like(w), 1)
  with pytest.raises(ValueError, match="out_channels / in_channels"):
    project(w, group_size=1, depth_multiplier=1, pointwise=False)
