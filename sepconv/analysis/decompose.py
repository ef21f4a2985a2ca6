"""How much of a standard convolution each point of the spectrum can represent.

A standard kernel W (kh, kw, C_in, C_out), HWIO, is projected onto a spectrum
point, and the relative Frobenius error ||W - W_hat||_F / ||W||_F is reported.
Every point below is linear, so its dense equivalent W_hat is a kernel of the
same shape and the projection is a least-squares problem:

* Plain grouped conv, group size g (channels per group), G = C_in / g groups, no
  pointwise: W_hat keeps W[:, :, c, o] where input channel c and output channel o
  lie in the same group and is zero elsewhere. Its weights are free within the
  blocks, so this block-diagonal part is the exact orthogonal projection.
* Grouped spatial stage (group size g, depth multiplier m, C_mid = C_in * m
  outputs, ``feature_group_count = G``) followed by a pointwise 1x1 conv to C_out.
  The composition is W_hat[:, :, c, o] = sum_{q in group(c)} d[:, :, c mod g, q]
  p[q, o]. Reshape group gamma's rows of W to the (kh kw g) x C_out matrix
  W_gamma; the composition restricted to those rows is D_gamma P_gamma with
  D_gamma (kh kw g) x (g m) and P_gamma (g m) x C_out, i.e. any matrix of rank
  <= g m. Groups own disjoint rows of W and disjoint factors, so the squared error
  is a sum of independent per-group terms, each minimised by the truncated SVD of
  W_gamma (Eckart-Young). The result is therefore optimal, exact once
  g m >= min(kh kw g, C_out), and at g = 1 it is the depthwise-separable case: a
  rank-m factorisation of each input channel's (kh kw) x C_out slice.

Error is monotone along the spectrum: raising m relaxes each rank bound, and if g
divides g' every g-grouped composition is also a g'-grouped one (a coarse
group's block stacks g'/g fine blocks of rank <= g m, rank <= g' m in all), so the
error never increases along such a chain. The same holds for plain grouped convs,
whose block masks nest.

Linear algebra runs in numpy float64 (deterministic, no accelerator needed);
factors come back in the kernel's floating dtype, in the layouts Flax uses:
spatial (kh, kw, g, C_mid) for ``nn.Conv(feature_group_count=C_in // g)`` and
pointwise (1, 1, C_mid, C_out), so a spectrum-point network can be initialised
from a trained standard one and fine-tuned.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np

from sepconv import validate
from sepconv.conv.layout import block_diagonal


@dataclasses.dataclass(frozen=True)
class Projection:
  """A spectrum point's least-squares approximation of a standard kernel.

  Attributes:
    group_size: input channels per spatial group (1 = depthwise, C_in = dense).
    depth_multiplier: spatial outputs per input channel; None without pointwise.
    pointwise: whether a 1x1 conv follows the spatial stage.
    spatial: (kh, kw, group_size, C_mid) kernel for ``feature_group_count`` groups;
      C_mid = C_in * depth_multiplier with pointwise, else C_out.
    pointwise_kernel: (1, 1, C_mid, C_out), or None without pointwise.
    kernel: the composed dense kernel W_hat, (kh, kw, C_in, C_out).
    rel_error: ||W - W_hat||_F / ||W||_F, computed in float64.
  """

  group_size: int
  depth_multiplier: int | None
  pointwise: bool
  spatial: np.ndarray
  pointwise_kernel: np.ndarray | None
  kernel: np.ndarray
  rel_error: float

  @property
  def feature_group_count(self) -> int:
    """Groups of the spatial stage, as ``nn.Conv(feature_group_count=...)`` takes it."""
    return self.kernel.shape[2] // self.group_size


def _check_kernel(kernel) -> np.ndarray:
  w = np.asarray(kernel)
  if w.ndim != 4:
    raise ValueError(f"kernel must be HWIO with shape (kh, kw, C_in, C_out), got shape {w.shape}")
  if not np.issubdtype(w.dtype, np.floating):
    raise ValueError(f"kernel dtype (={w.dtype}) must be floating")
  if not np.all(np.isfinite(w)):
    raise ValueError("kernel holds non-finite values")
  if not np.any(w):
    raise ValueError("kernel is all zeros: the relative error is undefined")
  return w


def _check_group_size(group_size: int, c_in: int) -> int:
  validate.positive_int(group_size, "group_size")
  if c_in % group_size:
    raise ValueError(f"in_channels (={c_in}) must be divisible by group_size (={group_size})")
  return c_in // group_size


def _rel_error(w: np.ndarray, w_hat: np.ndarray) -> float:
  w = w.astype(np.float64)
  return float(np.linalg.norm(w - w_hat) / np.linalg.norm(w))


def grouped_to_dense(kernel, feature_group_count: int) -> np.ndarray:
  """Expands a grouped HWIO kernel (kh, kw, C_in/G, C_out) to its dense block-diagonal form.

  Args:
    kernel: grouped kernel in the layout of ``lax.conv_general_dilated`` with
      ``feature_group_count=G``: output channel o belongs to group o // (C_out/G).
    feature_group_count: G.

  Returns:
    (kh, kw, C_in, C_out) with zeros outside the diagonal blocks, same dtype
    (``sepconv.conv.layout.block_diagonal`` on the numpy array).
  """
  w = np.asarray(kernel)
  if w.ndim != 4:
    raise ValueError(f"kernel must have shape (kh, kw, C_in/G, C_out), got shape {w.shape}")
  return block_diagonal(w, int(feature_group_count))


def compose(spatial, pointwise_kernel, feature_group_count: int) -> np.ndarray:
  """Dense kernel (kh, kw, C_in, C_out) of a grouped spatial conv followed by a 1x1 conv.

  Args:
    spatial: (kh, kw, C_in/G, C_mid) grouped kernel.
    pointwise_kernel: (1, 1, C_mid, C_out), or None for the spatial conv alone.
    feature_group_count: G of the spatial stage.

  Returns:
    The composed kernel in float64.
  """
  dense = grouped_to_dense(np.asarray(spatial, np.float64), feature_group_count)
  if pointwise_kernel is None:
    return dense
  p = np.asarray(pointwise_kernel, np.float64)
  if p.ndim != 4 or p.shape[:2] != (1, 1) or p.shape[2] != dense.shape[3]:
    raise ValueError(f"pointwise_kernel shape (={p.shape}) must be (1, 1, {dense.shape[3]}, C_out)")
  return np.einsum("hwcq,qo->hwco", dense, p[0, 0])


def project_grouped(kernel, group_size: int) -> Projection:
  """Exact Frobenius projection of a standard kernel onto a plain grouped conv.

  Args:
    kernel: standard kernel (kh, kw, C_in, C_out); C_out must be divisible by
      G = C_in / group_size.
    group_size: input channels per group (1 = depthwise with multiplier C_out/C_in).

  Returns:
    A ``Projection`` with ``pointwise=False``.
  """
  w = _check_kernel(kernel)
  kh, kw, c_in, c_out = w.shape
  groups = _check_group_size(group_size, c_in)
  if c_out % groups:
    raise ValueError(f"out_channels (={c_out}) must be divisible by the number of groups "
                     f"(={groups} = in_channels {c_in} / group_size {group_size})")
  gout = c_out // groups
  spatial = np.concatenate(
      [w[:, :, g * group_size:(g + 1) * group_size, g * gout:(g + 1) * gout]
       for g in range(groups)], axis=3)
  dense = compose(spatial, None, groups)
  return Projection(group_size=int(group_size), depth_multiplier=None, pointwise=False,
                    spatial=spatial.astype(w.dtype), pointwise_kernel=None,
                    kernel=dense.astype(w.dtype), rel_error=_rel_error(w, dense))


def project_separable(kernel, group_size: int, depth_multiplier: int) -> Projection:
  """Optimal grouped-spatial + pointwise factorisation of a standard kernel.

  Per spatial group, the truncated SVD of the group's (kh kw g) x C_out block at
  rank g * depth_multiplier, split symmetrically (U sqrt(S), sqrt(S) V^T). Where
  the rank budget exceeds the block's rank, the spare spatial filters are further
  orthonormal directions and their pointwise rows are zero: W_hat is unchanged
  and the pointwise rows still receive gradients when fine-tuning.

  Args:
    kernel: standard kernel (kh, kw, C_in, C_out).
    group_size: input channels per spatial group (1 = depthwise-separable).
    depth_multiplier: spatial outputs per input channel, m >= 1.

  Returns:
    A ``Projection`` with ``pointwise=True``.
  """
  w = _check_kernel(kernel)
  kh, kw, c_in, c_out = w.shape
  groups = _check_group_size(group_size, c_in)
  m = depth_multiplier
  validate.positive_int(m, "depth_multiplier")
  rank = group_size * m
  rows = kh * kw * group_size
  w64 = w.astype(np.float64)
  spatial = np.zeros((rows, groups * rank), np.float64)
  pointwise = np.zeros((groups * rank, c_out), np.float64)
  for gamma in range(groups):
    block = w64[:, :, gamma * group_size:(gamma + 1) * group_size, :].reshape(rows, c_out)
    # Reduced factors unless spare filters may need left directions past the C_out that
    # a reduced U holds (rows > C_out): a full V^T (C_out x C_out) costs 100x more.
    u, s, vt = np.linalg.svd(block, full_matrices=rows > c_out)
    keep = min(rank, s.size)
    root = np.sqrt(s[:keep])
    cols = slice(gamma * rank, (gamma + 1) * rank)
    d = np.zeros((rows, rank))
    p = np.zeros((rank, c_out))
    d[:, :keep] = u[:, :keep] * root[None, :]
    p[:keep] = root[:, None] * vt[:keep]
    if rank > keep:
      # Spare filters: the remaining left singular directions, cycled if the
      # budget exceeds kh*kw*g, scaled like the kept ones.
      scale = float(np.sqrt(np.mean(s[:keep]))) if keep and s[:keep].any() else 1.0
      spare = np.arange(keep, rank) % rows
      d[:, keep:] = u[:, spare] * scale
    spatial[:, cols] = d
    pointwise[cols] = p
  spatial = spatial.reshape(kh, kw, group_size, groups * rank)
  pointwise = pointwise[None, None]
  dense = compose(spatial, pointwise, groups)
  return Projection(group_size=int(group_size), depth_multiplier=int(m), pointwise=True,
                    spatial=spatial.astype(w.dtype), pointwise_kernel=pointwise.astype(w.dtype),
                    kernel=dense.astype(w.dtype), rel_error=_rel_error(w, dense))


def project(kernel, *, group_size: int, depth_multiplier: int | None = 1,
            pointwise: bool = True) -> Projection:
  """Projects a standard kernel onto one spectrum point.

  Args:
    kernel: standard kernel (kh, kw, C_in, C_out), HWIO.
    group_size: input channels per spatial group.
    depth_multiplier: with pointwise, spatial outputs per input channel; without
      pointwise it must be None or C_out / C_in (the grouped conv's own ratio).
    pointwise: grouped spatial + pointwise (True) or plain grouped conv (False).

  Returns:
    The ``Projection``.
  """
  if pointwise:
    if depth_multiplier is None:
      raise ValueError("depth_multiplier (=None) must be a positive int when pointwise=True")
    return project_separable(kernel, group_size, depth_multiplier)
  w = _check_kernel(kernel)
  if depth_multiplier is not None and depth_multiplier * w.shape[2] != w.shape[3]:
    raise ValueError(f"depth_multiplier (={depth_multiplier}) without pointwise must be None or "
                     f"out_channels / in_channels (={w.shape[3]} / {w.shape[2]})")
  return project_grouped(w, group_size)


def decomposition_errors(kernel, points: Iterable[tuple[int, int | None, bool]]) -> list[dict]:
  """Relative projection errors at many spectrum points, as record entries.

  Args:
    kernel: standard kernel (kh, kw, C_in, C_out).
    points: (group_size, depth_multiplier, pointwise) triples; depth_multiplier is
      ignored (recorded as None) where pointwise is False.

  Returns:
    [{"group_size", "depth_multiplier", "pointwise", "rel_error"}, ...] in the order
    given: the ``"errors"`` list of a ``"decomposition"`` record.
  """
  out = []
  for group_size, m, pw in points:
    proj = project(kernel, group_size=group_size, depth_multiplier=m if pw else None,
                   pointwise=bool(pw))
    out.append({"group_size": proj.group_size, "depth_multiplier": proj.depth_multiplier,
                "pointwise": proj.pointwise, "rel_error": proj.rel_error})
  return out
