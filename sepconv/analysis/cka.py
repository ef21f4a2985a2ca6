"""Linear centred kernel alignment (CKA) between two representations.

Full batch (Kornblith et al. 2019, "Similarity of Neural Network Representations
Revisited", eq. 5): for column-centred X (n, p1) and Y (n, p2),

  CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)
            = tr(K L) / sqrt(tr(K K) tr(L L)),  K = X X^T, L = Y Y^T.

The feature-space form costs p1 p2 memory and the Gram form n^2; ``linear_cka``
uses whichever is smaller, so wide conv features (n, h, w, c) go through the Gram
form. Minibatch (Nguyen, Raghu & Kornblith 2021, "Do Wide and Deep Networks Learn
the Same Things?", eq. 3): sum the unbiased HSIC_1 estimator (Song et al. 2012)
over minibatches and take

  CKA = sum_b HSIC_1(K_b, L_b) / sqrt(sum_b HSIC_1(K_b, K_b) sum_b HSIC_1(L_b, L_b)),

which needs only b x b Gram matrices and converges to the full-batch value as the
number of batches grows (the biased per-batch estimate does not).

Arithmetic is float32 under ``jax.default_matmul_precision("highest")`` so that
TPU/GPU matmuls do not drop to bf16 passes. Each representation is scaled to unit
Frobenius norm first (CKA is scale invariant), which keeps the fourth powers in
the Gram traces far from float32 overflow. Representations with zero variance
give NaN: CKA is undefined there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np


def _flatten(x, name: str) -> jax.Array:
  """(n, ...) -> (n, prod(...)) float32."""
  x = jnp.asarray(x)
  if x.ndim < 2:
    raise ValueError(f"{name} must have shape (n, features...) with ndim >= 2, got shape {x.shape}")
  if not jnp.issubdtype(x.dtype, jnp.floating):
    x = x.astype(jnp.float32)
  return x.reshape(x.shape[0], -1).astype(jnp.float32)


def _centre_unit(x: jax.Array) -> jax.Array:
  x = x - jnp.mean(x, axis=0, keepdims=True)
  return x / jnp.linalg.norm(x)


def _check_n(x: jax.Array, y: jax.Array) -> None:
  if x.shape[0] != y.shape[0]:
    raise ValueError(f"x and y must hold the same examples: x has n={x.shape[0]}, y has n={y.shape[0]}")


def linear_cka(x, y) -> jax.Array:
  """Full-batch linear CKA of two representations of the same n examples.

  Args:
    x: features, shape (n, ...); trailing axes (e.g. h, w, c of a conv layer) are
      flattened per example.
    y: features of the same n examples, shape (n, ...).

  Returns:
    A float32 scalar in [0, 1]; NaN if either representation is constant.
  """
  x, y = _flatten(x, "x"), _flatten(y, "y")
  _check_n(x, y)
  n, p1, p2 = x.shape[0], x.shape[1], y.shape[1]
  with jax.default_matmul_precision("highest"):
    x, y = _centre_unit(x), _centre_unit(y)
    if n * n <= p1 * p2 + p1 * p1 + p2 * p2:
      k, l = x @ x.T, y @ y.T
      xy, xx, yy = jnp.sum(k * l), jnp.sum(k * k), jnp.sum(l * l)
    else:
      xy = jnp.sum(jnp.square(y.T @ x))
      xx = jnp.sum(jnp.square(x.T @ x))
      yy = jnp.sum(jnp.square(y.T @ y))
    return xy / jnp.sqrt(xx * yy)


@jax.jit
def _hsic1_matrix(grams: jax.Array) -> jax.Array:
  """Unbiased HSIC_1 between every pair of (R, b, b) Gram matrices -> (R, R)."""
  r, b, _ = grams.shape
  eye = jnp.eye(b, dtype=grams.dtype)
  kt = grams * (1.0 - eye)[None]  # HSIC_1 uses Gram matrices with zeroed diagonals
  sums = jnp.sum(kt, axis=(1, 2))
  rows = jnp.sum(kt, axis=2)
  flat = kt.reshape(r, b * b)
  with jax.default_matmul_precision("highest"):
    trace_kl = flat @ flat.T
    row_dot = rows @ rows.T
  outer = sums[:, None] * sums[None, :]
  return (trace_kl + outer / ((b - 1) * (b - 2)) - 2.0 * row_dot / (b - 2)) / (b * (b - 3))


def _unit_gram(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Gram matrix of batch-centred, unit-norm features, and the norm removed."""
  # HSIC_1 is invariant to a common shift of the features, so centring within the
  # batch leaves it unchanged and keeps float32 cancellation small.
  x = x - jnp.mean(x, axis=0, keepdims=True)
  norm = jnp.linalg.norm(x)
  x = x / norm
  with jax.default_matmul_precision("highest"):
    return x @ x.T, norm


class MinibatchCKA:
  """Accumulates the unbiased minibatch CKA between every pair of named representations.

  Feed it batches of the same examples seen by every representation (e.g. the
  activations of all layers of one model, or one layer of several models on the
  same inputs), then read ``matrix()``.

  Args:
    names: the representation names, in the row/column order of the result.
  """

  def __init__(self, names: Sequence[str]):
    names = list(names)
    if not names or len(set(names)) != len(names):
      raise ValueError(f"names (={names}) must be a non-empty list of distinct names")
    self.names = names
    self._hsic = np.zeros((len(names), len(names)), np.float64)
    self.num_batches = 0
    self.num_examples = 0

  def update(self, batch: Mapping[str, object]) -> None:
    """Adds one minibatch: ``batch[name]`` has shape (b, ...) for every name, b >= 4."""
    missing = [k for k in self.names if k not in batch]
    if missing:
      raise ValueError(f"batch lacks representations {missing}; expected all of {self.names}")
    feats = [_flatten(batch[k], k) for k in self.names]
    sizes = {f.shape[0] for f in feats}
    if len(sizes) != 1:
      raise ValueError(f"all representations in a batch must share b, got sizes {sorted(sizes)}")
    b = sizes.pop()
    if b < 4:
      raise ValueError(f"minibatch size (={b}) must be >= 4 for the unbiased HSIC estimator")
    grams, norms = zip(*(_unit_gram(f) for f in feats))
    # The unit scaling is per batch, so undo it before summing over batches:
    # HSIC_1(K, L) scales with |x|^2 |y|^2.
    scale = np.asarray(jnp.stack(norms), np.float64) ** 2
    self._hsic += np.asarray(_hsic1_matrix(jnp.stack(grams)), np.float64) * np.outer(scale, scale)
    self.num_batches += 1
    self.num_examples += b

  def matrix(self) -> np.ndarray:
    """(R, R) CKA estimates, float64; rows and columns in ``names`` order."""
    if self.num_batches == 0:
      raise ValueError("no minibatches were added; call update() first")
    diag = np.sqrt(np.clip(np.diag(self._hsic), 0.0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
      return self._hsic / np.outer(diag, diag)


def minibatch_cka(x, y, batch_size: int) -> float:
  """Unbiased minibatch linear CKA over contiguous batches of ``batch_size`` examples.

  Args:
    x: features, shape (n, ...).
    y: features of the same n examples, shape (n, ...).
    batch_size: examples per minibatch, >= 4. A trailing batch with fewer than 4
      examples is left out (HSIC_1 is undefined below 4); a larger one is used.

  Returns:
    The CKA estimate as a Python float.
  """
  return float(cka_matrix({"x": x}, {"y": y}, batch_size=batch_size)[0, 0])


def _batches(features: Mapping[str, jax.Array], n: int, batch_size: int) -> Iterable[dict]:
  for start in range(0, n, batch_size):
    stop = min(start + batch_size, n)
    if stop - start >= 4:
      yield {k: v[start:stop] for k, v in features.items()}


def cka_matrix(rows: Mapping[str, object], cols: Mapping[str, object] | None = None, *,
               batch_size: int | None = None) -> np.ndarray:
  """CKA between every representation in ``rows`` and every one in ``cols``.

  Layer-by-layer similarity of one model: ``cka_matrix(feats)``. Two models
  layer by layer: ``cka_matrix(feats_a, feats_b)``. For variant-by-variant at one
  layer, see ``variant_cka``.

  Args:
    rows: name -> features (n, ...), all on the same n examples.
    cols: name -> features on the same examples; default ``rows``.
    batch_size: None for full-batch CKA, else the unbiased minibatch estimator over
      contiguous batches of this size (>= 4).

  Returns:
    float64 array (len(rows), len(cols)), in the mappings' key order.
  """
  same = cols is None
  cols = rows if same else cols
  if not rows or not cols:
    raise ValueError("rows and cols must each hold at least one representation")
  feats = {("r", k): _flatten(v, k) for k, v in rows.items()}
  feats.update({("c", k): _flatten(v, k) for k, v in cols.items()})
  ns = {k[1]: v.shape[0] for k, v in feats.items()}
  if len(set(ns.values())) != 1:
    raise ValueError(f"all representations must hold the same examples, got n per name {ns}")
  n = next(iter(ns.values()))
  row_keys = [("r", k) for k in rows]
  col_keys = [("r", k) for k in cols] if same else [("c", k) for k in cols]
  if batch_size is None:
    grams = {}

    def gram(key):
      # Wide features (p >= n) are compared through their n x n Gram matrix, which
      # is no larger than the features, so it is computed once per representation.
      if key not in grams:
        with jax.default_matmul_precision("highest"):
          x = _centre_unit(feats[key])
          k = x @ x.T
          grams[key] = (k, jnp.sqrt(jnp.sum(k * k)))
      return grams[key]

    out = np.empty((len(row_keys), len(col_keys)), np.float64)
    for i, a in enumerate(row_keys):
      for j, b in enumerate(col_keys):
        if same and j < i:
          out[i, j] = out[j, i]
        elif feats[a].shape[1] >= n and feats[b].shape[1] >= n:
          (k, nk), (l, nl) = gram(a), gram(b)
          out[i, j] = float(jnp.sum(k * l) / (nk * nl))
        else:
          out[i, j] = float(linear_cka(feats[a], feats[b]))
    return out
  if batch_size < 4:
    raise ValueError(f"batch_size (={batch_size}) must be >= 4 for the unbiased HSIC estimator")
  keys = list(dict.fromkeys(row_keys + col_keys))
  names = [f"{side}:{k}" for side, k in keys]
  acc = MinibatchCKA(names)
  for batch in _batches({f"{side}:{k}": feats[(side, k)] for side, k in keys}, n, batch_size):
    acc.update(batch)
  full = acc.matrix()
  index = {key: i for i, key in enumerate(keys)}
  return full[np.ix_([index[k] for k in row_keys], [index[k] for k in col_keys])]


def variant_cka(features: Mapping[str, Mapping[str, object]], *,
                batch_size: int | None = None) -> dict[str, np.ndarray]:
  """Variant-by-variant CKA at every layer name the variants share.

  Args:
    features: variant label -> (layer name -> features (n, ...)), every variant
      evaluated on the same n examples.
    batch_size: as in ``cka_matrix``.

  Returns:
    layer name -> (V, V) float64 matrix in the variants' key order; layers in the
    first variant's order, keeping only names present in every variant.
  """
  if not features:
    raise ValueError("features must hold at least one variant")
  variants = list(features)
  layers = [name for name in features[variants[0]]
            if all(name in features[v] for v in variants)]
  if not layers:
    raise ValueError(f"variants {variants} share no layer name")
  return {layer: cka_matrix({v: features[v][layer] for v in variants}, batch_size=batch_size)
          for layer in layers}


def cka_record(matrix, *, labels: Sequence[str], layers: Sequence[str]) -> dict:
  """The ``"cka"`` field of a result record (see ``sepconv.report``).

  The matrix axes index (label, layer) pairs, label-major: one label and many
  layers is a layer-by-layer matrix; many labels and one layer is
  variant-by-variant.

  Args:
    matrix: square array of side len(labels) * len(layers).
    labels: model/variant labels.
    layers: layer names.

  Returns:
    {"labels": [...], "layers": [...], "matrix": nested lists of floats}.
  """
  matrix = np.asarray(matrix, np.float64)
  side = len(labels) * len(layers)
  if matrix.shape != (side, side):
    raise ValueError(f"matrix shape (={matrix.shape}) must be ({side}, {side}) for "
                     f"{len(labels)} labels x {len(layers)} layers")
  return {"labels": list(labels), "layers": list(layers),
          "matrix": [[float(v) for v in row] for row in matrix]}
