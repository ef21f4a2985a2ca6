"""Effective rank, participation ratio and the linear probe."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sepconv.analysis import (effective_rank, fit_ridge_classifier, linear_probe,
                              participation_ratio, predict, singular_values)


def _with_singular_values(s, n=40, p=30, seed=0):
  """Centred (n, p) features whose singular values are exactly ``s``."""
  rng = np.random.default_rng(seed)
  a = rng.normal(size=(n, len(s)))
  a -= a.mean(axis=0, keepdims=True)
  u, _ = np.linalg.qr(a)
  v, _ = np.linalg.qr(rng.normal(size=(p, len(s))))
  return (u * np.asarray(s)[None, :]) @ v.T + 5.0  # the offset is removed by centring


@pytest.mark.parametrize("k", [1, 3, 7])
def test_equal_singular_values_give_k(k):
  x = _with_singular_values([2.5] * k)
  assert effective_rank(x) == pytest.approx(k, rel=1e-9)
  assert participation_ratio(x) == pytest.approx(k, rel=1e-9)


def test_hand_computed_three_to_one():
  # q = (3/4, 1/4): exp(H) = 4 / 3^(3/4); eigenvalues (9, 1): (10)^2 / 82.
  x = _with_singular_values([3.0, 1.0])
  assert effective_rank(x) == pytest.approx(4.0 / 3.0 ** 0.75, rel=1e-9)
  assert participation_ratio(x) == pytest.approx(100.0 / 82.0, rel=1e-9)


@pytest.mark.parametrize("shape", [(20, 50), (80, 6)])  # n x n and p x p Gram paths
def test_singular_values_match_svd(shape):
  x = np.random.default_rng(1).normal(size=shape)
  want = np.linalg.svd(x - x.mean(axis=0, keepdims=True), compute_uv=False)
  np.testing.assert_allclose(singular_values(x)[:len(want)], want, rtol=1e-8, atol=1e-8)


def test_invariant_to_rotation_and_scale_and_flattens_conv_features():
  rng = np.random.default_rng(2)
  x = rng.normal(size=(32, 2, 2, 3)) * np.array([3.0, 1.0, 0.5])[None, None, None, :]
  q, _ = np.linalg.qr(rng.normal(size=(12, 12)))
  flat = x.reshape(32, 12)
  assert effective_rank(x) == pytest.approx(effective_rank(4.0 * flat @ q), rel=1e-9)
  assert participation_ratio(x) == pytest.approx(participation_ratio(flat @ q), rel=1e-9)
  assert 1.0 < participation_ratio(x) < effective_rank(x) < 12.0


def test_zero_variance_raises():
  with pytest.raises(ValueError, match="zero variance"):
    effective_rank(np.ones((5, 3)))
  with pytest.raises(ValueError, match="n >= 2"):
    participation_ratio(np.ones((1, 3)))


def _blobs(n, p, k, spread, seed):
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(k, p)) * 4.0
  y = np.arange(n) % k
  return centres[y] + spread * rng.normal(size=(n, p)), y


def test_probe_separates_separable_classes_deterministically():
  x, y = _blobs(300, 10, 4, 0.3, 3)
  first = linear_probe(x[:200], y[:200], x[200:], y[200:])
  assert first == {"train_accuracy": 1.0, "test_accuracy": 1.0}
  assert linear_probe(x[:200], y[:200], x[200:], y[200:]) == first


@pytest.mark.parametrize("n,p", [(150, 8), (30, 60)])  # primal and dual solves
def test_probe_matches_sklearn_ridge_classifier(n, p):
  from sklearn.linear_model import RidgeClassifier
  x, y = _blobs(n + 50, p, 3, 3.0, 4)
  params = fit_ridge_classifier(x[:n], y[:n], l2=2.0)
  mean, scale = x[:n].mean(axis=0), x[:n].std(axis=0)
  ref = RidgeClassifier(alpha=2.0, solver="svd").fit((x[:n] - mean) / scale, y[:n])
  np.testing.assert_allclose(params[2], ref.coef_.T, atol=1e-8)
  np.testing.assert_array_equal(predict(params, x[n:]), ref.predict((x[n:] - mean) / scale))
  acc = linear_probe(x[:n], y[:n], x[n:], y[n:], l2=2.0)
  assert acc["test_accuracy"] == pytest.approx(float(np.mean(ref.predict((x[n:] - mean) / scale) == y[n:])))


def test_probe_bad_input_raises():
  x, y = _blobs(20, 3, 2, 1.0, 5)
  with pytest.raises(ValueError, match="integer class ids"):
    linear_probe(x, y.astype(float), x, y)
  with pytest.raises(ValueError, match="l2"):
    linear_probe(x, y, x, y, l2=0.0)
  with pytest.raises(ValueError, match="features per example"):
    linear_probe(x, y, x[:, :2], y)
  with pytest.raises(ValueError, match="num_classes=2"):
    fit_ridge_classifier(x, y + 1, num_classes=2)
  assert math.isfinite(linear_probe(np.c_[x, np.ones(20)], y, np.c_[x, np.ones(20)], y)["test_accuracy"])
