"""Linear CKA: closed-form cases, invariances, and the minibatch estimator."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sepconv.analysis import (MinibatchCKA, cka_matrix, cka_record, linear_cka, minibatch_cka,
                              variant_cka)


def _reference_cka(x, y):
  """Kornblith et al. eq. 5 with the explicit centring matrix H, float64."""
  x = np.asarray(x, np.float64).reshape(len(x), -1)
  y = np.asarray(y, np.float64).reshape(len(y), -1)
  n = x.shape[0]
  h = np.eye(n) - np.ones((n, n)) / n
  k, l = h @ x @ x.T @ h, h @ y @ y.T @ h
  return np.trace(k @ l) / np.sqrt(np.trace(k @ k) * np.trace(l @ l))


def _reference_hsic1(x, y):
  """Unbiased HSIC_1 (Song et al. 2012) written term by term, float64."""
  k = x @ x.T
  l = y @ y.T
  n = k.shape[0]
  np.fill_diagonal(k, 0.0)
  np.fill_diagonal(l, 0.0)
  one = np.ones(n)
  return (np.trace(k @ l) + (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2))
          - 2.0 / (n - 2) * one @ k @ l @ one) / (n * (n - 3))


def _orthogonal(rng, p):
  q, r = np.linalg.qr(rng.normal(size=(p, p)))
  return q * np.sign(np.diag(r))[None, :]


def test_hand_computed_one_dimensional():
  # Centred x = (-1, 0, 1), y = (-1, 1, 0): (x.y)^2 / (|x|^2 |y|^2) = 1 / (2 * 2).
  x = np.array([[1.0], [2.0], [3.0]])
  y = np.array([[1.0], [3.0], [2.0]])
  assert float(linear_cka(x, y)) == pytest.approx(0.25, abs=1e-6)


def test_hand_computed_two_dimensional():
  # X^T X = 2 I (|.|_F = 2 sqrt 2), Y^T Y = 2, Y^T X = (2, 0): CKA = 4 / (2 sqrt 2 * 2).
  x = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
  y = x[:, :1]
  assert float(linear_cka(x, y)) == pytest.approx(1.0 / math.sqrt(2.0), abs=1e-6)


@pytest.mark.parametrize("n,p", [(6, 40), (200, 5)])  # Gram form, feature form
def test_identical_is_one(n, p):
  x = np.random.default_rng(0).normal(size=(n, p))
  assert float(linear_cka(x, x)) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("n,p1,p2", [(10, 30, 25), (300, 6, 4)])
def test_matches_centring_matrix_reference(n, p1, p2):
  rng = np.random.default_rng(1)
  x = rng.normal(size=(n, p1)) + 3.0
  y = x[:, :1] * rng.normal(size=(1, p2)) + rng.normal(size=(n, p2))
  assert float(linear_cka(x, y)) == pytest.approx(_reference_cka(x, y), abs=1e-5)


def test_invariant_to_orthogonal_transform_and_isotropic_scaling():
  rng = np.random.default_rng(2)
  x = rng.normal(size=(50, 8))
  y = np.tanh(x @ rng.normal(size=(8, 6))) + 0.3 * rng.normal(size=(50, 6))
  base = float(linear_cka(x, y))
  assert 0.1 < base < 0.99
  moved = float(linear_cka(7.5 * x @ _orthogonal(rng, 8), 0.02 * y @ _orthogonal(rng, 6)))
  assert moved == pytest.approx(base, abs=1e-5)
  assert float(linear_cka(x, x @ _orthogonal(rng, 8))) == pytest.approx(1.0, abs=1e-5)


def test_not_invariant_to_anisotropic_scaling():
  rng = np.random.default_rng(3)
  x = rng.normal(size=(60, 4))
  assert float(linear_cka(x, x * np.array([[10.0, 1.0, 1.0, 1.0]]))) < 0.9


def test_conv_features_are_flattened_per_example():
  rng = np.random.default_rng(4)
  x = rng.normal(size=(12, 3, 3, 4))
  y = rng.normal(size=(12, 2, 2, 5))
  assert float(linear_cka(x, y)) == pytest.approx(
      float(linear_cka(x.reshape(12, -1), y.reshape(12, -1))), abs=1e-6)


def test_single_batch_equals_unbiased_reference():
  rng = np.random.default_rng(5)
  x = rng.normal(size=(20, 7)) + 1.0
  y = x @ rng.normal(size=(7, 3)) + rng.normal(size=(20, 3))
  want = _reference_hsic1(x, y) / np.sqrt(_reference_hsic1(x, x) * _reference_hsic1(y, y))
  assert minibatch_cka(x, y, batch_size=20) == pytest.approx(want, abs=1e-5)


def test_minibatch_estimator_close_to_full_batch_on_large_n():
  rng = np.random.default_rng(6)
  n = 4096
  x = rng.normal(size=(n, 32)) * np.linspace(2.0, 0.2, 32)[None, :]
  y = np.tanh(0.5 * x[:, :12] @ rng.normal(size=(12, 16))) + 0.5 * rng.normal(size=(n, 16))
  full = float(linear_cka(x, y))
  mini = minibatch_cka(x, y, batch_size=256)
  assert 0.3 < full < 0.8
  assert mini == pytest.approx(full, abs=3e-2)


def test_matrices_are_symmetric_with_unit_diagonal():
  rng = np.random.default_rng(7)
  base = rng.normal(size=(64, 10))
  feats = {"a": base, "b": base @ rng.normal(size=(10, 6)), "c": rng.normal(size=(64, 4, 4, 2))}
  full = cka_matrix(feats)
  mini = cka_matrix(feats, batch_size=16)
  for m in (full, mini):
    assert m.shape == (3, 3)
    np.testing.assert_allclose(m, m.T, atol=1e-12)
    np.testing.assert_allclose(np.diag(m), 1.0, atol=1e-5)
  assert full[0, 2] == pytest.approx(float(linear_cka(feats["a"], feats["c"])), abs=1e-7)
  cross = cka_matrix({"a": feats["a"]}, {"b": feats["b"], "c": feats["c"]})
  np.testing.assert_allclose(cross, full[:1, 1:], atol=1e-7)


def test_accumulator_streams_batches():
  rng = np.random.default_rng(8)
  x = rng.normal(size=(48, 5))
  y = x[:, :2] + 0.5 * rng.normal(size=(48, 2))
  acc = MinibatchCKA(["x", "y"])
  for start in range(0, 48, 12):
    acc.update({"x": x[start:start + 12], "y": y[start:start + 12], "extra": x[:1]})
  assert acc.num_batches == 4 and acc.num_examples == 48
  assert acc.matrix()[0, 1] == pytest.approx(minibatch_cka(x, y, batch_size=12), abs=1e-9)


def test_variant_cka_uses_shared_layers_in_order():
  rng = np.random.default_rng(9)
  a = {"conv1": rng.normal(size=(16, 4)), "conv2": rng.normal(size=(16, 3)), "only_a": rng.normal(size=(16, 2))}
  b = {"conv2": a["conv2"] * 2.0, "conv1": rng.normal(size=(16, 4))}
  out = variant_cka({"dense": a, "g=1": b})
  assert list(out) == ["conv1", "conv2"]
  assert out["conv2"][0, 1] == pytest.approx(1.0, abs=1e-5)
  rec = cka_record(out["conv1"], labels=["dense", "g=1"], layers=["conv1"])
  assert rec["labels"] == ["dense", "g=1"] and len(rec["matrix"]) == 2


def test_bad_input_raises_value_error():
  x = np.zeros((8, 3))
  with pytest.raises(ValueError, match="same examples"):
    linear_cka(x, np.zeros((9, 3)))
  with pytest.raises(ValueError, match="ndim >= 2"):
    linear_cka(np.zeros(8), x)
  with pytest.raises(ValueError, match=r"batch_size \(=3\)"):
    minibatch_cka(x, x, batch_size=3)
  with pytest.raises(ValueError, match="share no layer"):
    variant_cka({"a": {"l1": x}, "b": {"l2": x}})
  with pytest.raises(ValueError, match="must be"):
    cka_record(np.eye(3), labels=["a"], layers=["l1", "l2"])
  with pytest.raises(ValueError, match="lacks"):
    MinibatchCKA(["x", "y"]).update({"x": x})


def test_matrix_of_wide_features_matches_pairwise_cka():
  rng = np.random.default_rng(10)
  base = rng.normal(size=(12, 20))
  feats = {"wide1": base @ rng.normal(size=(20, 40)), "wide2": np.tanh(base) @ rng.normal(size=(20, 30)),
           "narrow": base[:, :3]}
  m = cka_matrix(feats)
  for i, a in enumerate(feats):
    for j, b in enumerate(feats):
      assert m[i, j] == pytest.approx(_reference_cka(feats[a], feats[b]), abs=1e-5)
