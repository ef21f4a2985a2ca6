"""How many dimensions a layer's features use: effective rank and participation ratio.

Both are computed from the singular values s_i of the centred feature matrix
(n, p), obtained in float64 from the eigenvalues of the smaller of the two Gram
matrices (n x n or p x p), so wide conv features cost min(n, p)^2 memory.
Singular values below about 1e-8 of the largest are round-off there and are
treated as zero.

* Effective rank (Roy & Vetterli 2007, "The effective rank: a measure of
  effective dimensionality"): exp(H(q)) with q_i = s_i / sum_j s_j and Shannon
  entropy H in nats. Equals k for k equal non-zero singular values.
* Participation ratio: (sum_i l_i)^2 / sum_i l_i^2 over covariance eigenvalues
  l_i = s_i^2; also k for k equal ones, and weighted towards the top directions.
"""

from __future__ import annotations

import numpy as np


def singular_values(features) -> np.ndarray:
  """Singular values of the column-centred (n, prod(...)) features, descending, float64.

  Args:
    features: array (n, ...); trailing axes are flattened per example.

  Returns:
    min(n, p) non-negative values.
  """
  x = np.asarray(features, np.float64)
  if x.ndim < 2 or x.shape[0] < 2:
    raise ValueError(f"features must have shape (n >= 2, features...), got shape {x.shape}")
  x = x.reshape(x.shape[0], -1)
  if not np.all(np.isfinite(x)):
    raise ValueError("features hold non-finite values")
  x = x - x.mean(axis=0, keepdims=True)
  gram = x @ x.T if x.shape[0] <= x.shape[1] else x.T @ x
  eig = np.clip(np.linalg.eigvalsh(gram)[::-1], 0.0, None)
  # Gram eigenvalues (s^2) below round-off of the largest are numerically zero; their
  # square roots would be ~1e-8 s[0], not zero, so they are set to zero here.
  eig[eig <= eig[0] * eig.size * np.finfo(np.float64).eps] = 0.0
  return np.sqrt(eig)


def _nonzero(s: np.ndarray) -> np.ndarray:
  if s.size == 0 or s[0] == 0.0:
    raise ValueError("features have zero variance: their rank is undefined")
  return s[s > 0.0]


def effective_rank(features) -> float:
  """Entropy effective rank (Roy & Vetterli 2007) of centred features.

  Args:
    features: array (n, ...), e.g. a conv layer's (n, h, w, c) activations.

  Returns:
    A float in [1, min(n, p)].
  """
  s = _nonzero(singular_values(features))
  q = s / s.sum()
  return float(np.exp(-np.sum(q * np.log(q))))


def participation_ratio(features) -> float:
  """Participation ratio (sum l)^2 / sum l^2 of the covariance eigenvalues l = s^2.

  Args:
    features: array (n, ...).

  Returns:
    A float in [1, min(n, p)].
  """
  lam = _nonzero(singular_values(features)) ** 2
  return float(lam.sum() ** 2 / np.sum(lam ** 2))
