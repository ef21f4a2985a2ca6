"""Linear probe on frozen features: a closed-form ridge classifier.

Features are standardised with the training split's mean and standard deviation,
targets are one-hot in {-1, +1} (as scikit-learn's ``RidgeClassifier``), and the
weights minimise ||X W + b - Y||^2 + l2 ||W||^2, solved in float64 in the primal
(p x p) or dual (n x n) form, whichever is smaller. The prediction is the argmax
class. There is no iteration, learning rate or seed, so the probe is deterministic
and its accuracy reflects the features rather than an optimiser.
"""

from __future__ import annotations

import numpy as np


def _features(x, name: str) -> np.ndarray:
  x = np.asarray(x, np.float64)
  if x.ndim < 2:
    raise ValueError(f"{name} must have shape (n, features...), got shape {x.shape}")
  x = x.reshape(x.shape[0], -1)
  if not np.all(np.isfinite(x)):
    raise ValueError(f"{name} holds non-finite values")
  return x


def _labels(y, n: int, name: str) -> np.ndarray:
  y = np.asarray(y)
  if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
    raise ValueError(f"{name} must be integer class ids of shape ({n},), got {y.dtype} {y.shape}")
  return y


def fit_ridge_classifier(x, y, *, num_classes: int | None = None,
                         l2: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """Fits the probe; returns (mean, scale, weights (p, K), bias (K,)).

  Args:
    x: training features (n, ...).
    y: integer labels (n,) in [0, num_classes).
    num_classes: K; default max(y) + 1.
    l2: ridge penalty on standardised features, > 0.

  Returns:
    The standardisation (mean, scale) and the linear map, all float64.
  """
  x = _features(x, "x")
  y = _labels(y, x.shape[0], "y")
  if l2 <= 0:
    raise ValueError(f"l2 (={l2}) must be > 0")
  k = int(num_classes if num_classes is not None else y.max() + 1)
  if y.min() < 0 or y.max() >= k:
    raise ValueError(f"labels must lie in [0, num_classes={k}), got range [{y.min()}, {y.max()}]")
  mean = x.mean(axis=0, keepdims=True)
  scale = x.std(axis=0, keepdims=True)
  scale = np.where(scale > 0, scale, 1.0)  # constant features carry no signal; keep them at 0
  xs = (x - mean) / scale
  t = -np.ones((x.shape[0], k))
  t[np.arange(x.shape[0]), y] = 1.0
  t_mean = t.mean(axis=0, keepdims=True)
  tc = t - t_mean
  n, p = xs.shape
  if p <= n:
    w = np.linalg.solve(xs.T @ xs + l2 * np.eye(p), xs.T @ tc)
  else:
    w = xs.T @ np.linalg.solve(xs @ xs.T + l2 * np.eye(n), tc)
  return mean[0], scale[0], w, t_mean[0]


def predict(params: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], x) -> np.ndarray:
  """Argmax class ids (n,) of a fitted probe."""
  mean, scale, w, b = params
  x = _features(x, "x")
  if x.shape[1] != w.shape[0]:
    raise ValueError(f"x has {x.shape[1]} features per example, the probe was fitted on {w.shape[0]}")
  xs = (x - mean[None, :]) / scale[None, :]
  return np.argmax(xs @ w + b[None, :], axis=1)


def linear_probe(train_x, train_y, test_x, test_y, *, num_classes: int | None = None,
                 l2: float = 1.0) -> dict[str, float]:
  """Train and test accuracy of a ridge-classifier probe on frozen features.

  Args:
    train_x: training features (n, ...), e.g. penultimate-layer activations.
    train_y: integer labels (n,).
    test_x: held-out features (m, ...), same trailing shape.
    test_y: integer labels (m,).
    num_classes: K; default max over both label sets + 1.
    l2: ridge penalty on standardised features.

  Returns:
    {"train_accuracy": float, "test_accuracy": float}.
  """
  test_y = _labels(test_y, np.asarray(test_x).shape[0], "test_y")
  if num_classes is None:
    num_classes = int(max(np.max(train_y), np.max(test_y))) + 1
  params = fit_ridge_classifier(train_x, train_y, num_classes=num_classes, l2=l2)
  return {
      "train_accuracy": float(np.mean(predict(params, train_x) == np.asarray(train_y))),
      "test_accuracy": float(np.mean(predict(params, test_x) == test_y)),
  }
