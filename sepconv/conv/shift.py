"""Shifted multiply-add convolution: one fused loop, no im2col, no padded copy.

A depthwise or narrow-group convolution does a few multiply-adds per output element, so
its speed is set by memory traffic, not arithmetic. Written as a sum over kernel taps of
``x[window slice] * w[tap]``, XLA fuses the whole sum into one loop that reads the input
once and writes the output once. Padding is never materialised: the output is cut into
border bands and an interior (``Axis.segments``); in the interior every tap reads inside
the input, so its slices need no masks, and the thin borders add each tap over the
sub-slice where it is valid (a zero-padded product, i.e. a select) before the pieces are
concatenated, which XLA also fuses.

The same routine serves the backward pass: the input gradient is a correlation of the
output gradient with the kernel's transposed taps (for stride s, one stride-1 correlation
per output phase, interleaved), and the kernel gradient is k*k per-channel reductions of
shifted input times output gradient (``shift_kernel_grad``).

Channel mixing inside a group is unrolled: C_in/G broadcast multiply-adds per tap, so the
formulation is for depthwise (1), depth multipliers and narrow groups (``MAX_GROUP_IN``).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax import lax

from sepconv.conv.geometry import ConvGeometry

# Unrolled terms per output element are group_in * kh * kw; past this XLA stops fusing
# them into one loop and the formulation loses its point.
MAX_GROUP_IN = 8
MAX_TERMS = 8 * 9


def support(geom: ConvGeometry) -> str | None:
  """Why the unrolled formulation does not apply to ``geom``, or None."""
  if geom.group_in > MAX_GROUP_IN:
    return (f"channels per group (={geom.group_in}) must be at most {MAX_GROUP_IN} for "
            "the shift formulation, which unrolls them")
  terms = geom.group_in * geom.kernel_hw[0] * geom.kernel_hw[1]
  if geom.group_in > 1 and terms > MAX_TERMS:
    return (f"channels per group x kernel taps (={terms}) must be at most {MAX_TERMS} for "
            "the grouped shift formulation, which unrolls them")
  return None


def acc_dtype(dtype) -> jnp.dtype:
  """Accumulation type: float32 for half types, else the type itself."""
  dtype = jnp.dtype(dtype)
  return jnp.dtype(jnp.float32) if dtype.itemsize < 4 else dtype


@dataclasses.dataclass(frozen=True)
class Axis:
  """One spatial axis of a tap sum: ``input[out * stride + offsets[t]]`` for tap ``taps[t]``."""
  size: int
  out: int
  stride: int
  taps: tuple[int, ...]
  offsets: tuple[int, ...]

  def valid(self, t: int) -> tuple[int, int]:
    """Output range [start, stop) where tap ``t`` reads inside the input."""
    off = self.offsets[t]
    start = max(0, -(off // self.stride))
    stop = min(self.out, (self.size - 1 - off) // self.stride + 1)
    return start, max(start, stop)

  def segments(self) -> list[tuple[int, int]]:
    """Border bands and the interior where every tap is valid."""
    if not self.taps:
      return [(0, self.out)]
    ranges = [self.valid(t) for t in range(len(self.taps))]
    lo = min(max(r[0] for r in ranges), self.out)
    hi = max(lo, min(r[1] for r in ranges))
    cuts = sorted({0, lo, hi, self.out})
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


def forward_axes(geom: ConvGeometry) -> tuple[Axis, Axis]:
  """The two axes of the forward convolution."""
  return tuple(
      Axis(size, out, s, tuple(range(k)), tuple(t * d - lo for t in range(k)))
      for size, out, s, k, d, (lo, _) in zip(geom.in_hw, geom.out_hw, geom.strides,
                                             geom.kernel_hw, geom.dilation, geom.pads))


def _mix(xs: jax.Array, w_tap: jax.Array, groups: int) -> jax.Array:
  """One tap's channel mixing: xs (..., G*ci) with w_tap (ci, G*co) -> (..., G*co)."""
  ci, cout = w_tap.shape
  co = cout // groups
  lead = xs.shape[:-1]
  ones = (1,) * len(lead)
  if ci == 1 and co == 1:
    return xs * w_tap.reshape(ones + (cout,))
  xg = xs.reshape(lead + (groups, ci))
  wg = w_tap.reshape(ci, groups, co)
  acc = None
  for c in range(ci):
    term = xg[..., c:c + 1] * wg[c].reshape(ones + (groups, co))
    acc = term if acc is None else acc + term
  return acc.reshape(lead + (cout,))


def _region(x, w_taps, groups, axes, rows, cols, dtype, init=None):
  """Sum of taps over output rows [r0, r1) x cols [c0, c1), zero where a tap is outside."""
  ah, aw = axes
  (r0, r1), (c0, c1) = rows, cols
  n, cout = x.shape[0], w_taps.shape[-1]
  acc = None if init is None else init[:, r0:r1, c0:c1, :].astype(dtype)
  for ti in range(len(ah.taps)):
    vr0, vr1 = ah.valid(ti)
    vr0, vr1 = max(vr0, r0), min(vr1, r1)
    if vr1 <= vr0:
      continue
    for tj in range(len(aw.taps)):
      vc0, vc1 = aw.valid(tj)
      vc0, vc1 = max(vc0, c0), min(vc1, c1)
      if vc1 <= vc0:
        continue
      h_start = vr0 * ah.stride + ah.offsets[ti]
      w_start = vc0 * aw.stride + aw.offsets[tj]
      xs = lax.slice(x, (0, h_start, w_start, 0),
                     (n, h_start + (vr1 - vr0 - 1) * ah.stride + 1,
                      w_start + (vc1 - vc0 - 1) * aw.stride + 1, x.shape[3]),
                     (1, ah.stride, aw.stride, 1))
      term = _mix(xs.astype(dtype), w_taps[ah.taps[ti], aw.taps[tj]].astype(dtype), groups)
      if (vr0, vr1, vc0, vc1) != (r0, r1, c0, c1):
        term = lax.pad(term, jnp.zeros((), dtype),
                       ((0, 0, 0), (vr0 - r0, r1 - vr1, 0), (vc0 - c0, c1 - vc1, 0), (0, 0, 0)))
      acc = term if acc is None else acc + term
  if acc is None:
    acc = jnp.zeros((n, r1 - r0, c1 - c0, cout), dtype)
  return acc


def tap_sum(x: jax.Array, w_taps: jax.Array, groups: int, axes: tuple[Axis, Axis],
            out_dtype, init: jax.Array | None = None) -> jax.Array:
  """``out[n, p, q] = sum_t x[n, p*sh + oh_t, q*sw + ow_t] @ w[t]`` (grouped), as one fusion.

  Args:
    x: (N, H, W, G*ci).
    w_taps: (kh, kw, ci, G*co); ``axes[k].taps`` index its first two dimensions.
    groups: G.
    axes: the H and W axes.
    out_dtype: result type; sums run in ``acc_dtype(out_dtype)``.
    init: optional (N, Ho, Wo, G*co) partial sum to add to, read inside each region so
      the concatenation stays the root of the fusion.
  """
  dtype = acc_dtype(out_dtype)
  rows_list = []
  for rows in axes[0].segments():
    pieces = [_region(x, w_taps, groups, axes, rows, cols, dtype, init)
              for cols in axes[1].segments()]
    rows_list.append(pieces[0] if len(pieces) == 1 else jnp.concatenate(pieces, axis=2))
  out = rows_list[0] if len(rows_list) == 1 else jnp.concatenate(rows_list, axis=1)
  return out.astype(out_dtype)


def shift_forward(x: jax.Array, kernel: jax.Array, geom: ConvGeometry) -> jax.Array:
  """The forward convolution."""
  return tap_sum(x, kernel, geom.groups, forward_axes(geom), x.dtype)


def _transposed_taps(kernel: jax.Array, groups: int) -> jax.Array:
  """(kh, kw, ci, G*co) -> (kh, kw, co, G*ci): each group's channel roles swapped."""
  kh, kw, ci, cout = kernel.shape
  co = cout // groups
  k = kernel.reshape(kh, kw, ci, groups, co)
  return jnp.transpose(k, (0, 1, 4, 3, 2)).reshape(kh, kw, co, groups * ci)


def _phase_axis(size_in: int, size_out: int, stride: int, k: int, d: int, lo: int,
                phase: int, rows: int) -> Axis:
  """Axis of the input-gradient correlation for input positions ``q * stride + phase``."""
  taps, offsets = [], []
  for t in range(k):
    rel = t * d - lo - phase  # out * stride + t*d - lo = q * stride + phase
    if rel % stride == 0:
      taps.append(t)
      offsets.append(-(rel // stride))
  return Axis(size_out, rows, 1, tuple(taps), tuple(offsets))


def shift_input_grad(dy: jax.Array, kernel: jax.Array, geom: ConvGeometry) -> jax.Array:
  """d(loss)/dx from d(loss)/dy: a correlation with transposed taps, one per stride phase."""
  wt = _transposed_taps(kernel, geom.groups)
  (h, w), (ho, wo) = geom.in_hw, geom.out_hw
  (sh, sw), (kh, kw), (dh, dw) = geom.strides, geom.kernel_hw, geom.dilation
  (pt, _), (pl, _) = geom.pads
  rows, cols = -(-h // sh), -(-w // sw)
  phases = []
  for ph in range(sh):
    ah = _phase_axis(h, ho, sh, kh, dh, pt, ph, rows)
    row = [tap_sum(dy, wt, geom.groups,
                   (ah, _phase_axis(w, wo, sw, kw, dw, pl, pw, cols)), dy.dtype)
           for pw in range(sw)]
    phases.append(row)
  if sh == 1 and sw == 1:
    return phases[0][0]
  # Interleave: out[n, q*sh + a, r*sw + b] = phases[a][b][n, q, r].
  stacked = jnp.stack([jnp.stack(row, axis=3) for row in phases], axis=2)
  n, c = dy.shape[0], geom.in_channels
  return stacked.reshape(n, rows * sh, cols * sw, c)[:, :h, :w, :]


def _sum_rows(terms: list[jax.Array], axis: int) -> list[jax.Array]:
  """Sums each term over ``axis`` in one loop (a variadic reduce).

  A single reduce would be offloaded to the CPU YNNPACK fusion, which cannot fuse the
  shifted slices feeding it and so materialises all k*k products; one variadic reduce
  stays in XLA's emitter, fuses them, and reads each input row once for every tap.
  """
  if len(terms) == 1:
    return [jnp.sum(terms[0], axis=axis)]
  zero = jnp.zeros((), terms[0].dtype)
  return list(lax.reduce(tuple(terms), (zero,) * len(terms),
                         lambda a, b: tuple(u + v for u, v in zip(a, b)), (axis,)))


def shift_kernel_grad(x: jax.Array, dy: jax.Array, geom: ConvGeometry) -> jax.Array:
  """d(loss)/d(kernel): per tap, the sum over (n, p, q) of shifted x times dy, per group."""
  ah, aw = forward_axes(geom)
  dtype = acc_dtype(x.dtype)
  n, ho, wo, cout = dy.shape
  ci, groups = geom.group_in, geom.groups
  co = cout // groups
  kh, kw = geom.kernel_hw
  terms, slots = [], []
  for ti in range(len(ah.taps)):
    for tj in range(len(aw.taps)):
      (r0, r1), (c0, c1) = ah.valid(ti), aw.valid(tj)
      if r1 <= r0 or c1 <= c0:
        continue
      h_start = r0 * ah.stride + ah.offsets[ti]
      w_start = c0 * aw.stride + aw.offsets[tj]
      xs = lax.slice(x, (0, h_start, w_start, 0),
                     (n, h_start + (r1 - r0 - 1) * ah.stride + 1,
                      w_start + (c1 - c0 - 1) * aw.stride + 1, x.shape[3]),
                     (1, ah.stride, aw.stride, 1)).astype(dtype)
      xs = lax.pad(xs, jnp.zeros((), dtype),
                   ((0, 0, 0), (r0, ho - r1, 0), (c0, wo - c1, 0), (0, 0, 0)))
      g = dy.astype(dtype)
      if ci == 1:
        # (..., G, 1) * (..., G, co): depthwise with multiplier co.
        prod = (xs.reshape(xs.shape[:3] + (groups, 1)) * g.reshape(g.shape[:3] + (groups, co))
                ).reshape(g.shape)
      else:
        prod = (xs.reshape(xs.shape[:3] + (groups, ci, 1))
                * g.reshape(g.shape[:3] + (groups, 1, co)))
      terms.append(prod)
      slots.append(ti * kw + tj)
  if not terms:  # every window lies in the padding
    return jnp.zeros(geom.kernel_shape, x.dtype)
  sums = dict(zip(slots, (jnp.sum(r, axis=(0, 1)) for r in _sum_rows(terms, axis=2))))
  zero = jnp.zeros((groups * co,) if ci == 1 else (groups, ci, co), dtype)
  total = jnp.stack([sums.get(slot, zero) for slot in range(kh * kw)])
  if ci > 1:
    total = jnp.transpose(total, (0, 2, 1, 3))  # (T, G, ci, co) -> (T, ci, G, co)
  return total.reshape(kh, kw, ci, cout).astype(x.dtype)
