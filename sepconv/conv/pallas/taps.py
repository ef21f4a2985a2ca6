"""The tap-sum problem every Pallas kernel here solves, and the wrapper's layout for it.

A depthwise, depth-multiplier or narrow-group convolution, and its input gradient, are one
problem: ``src`` (N, H, W, G*a) -> ``out`` (N, Ho, Wo, G*b) with weights (kh, kw, a, G*b),

    out[n, p, q, g*b + v] = sum_{i, j, u} srcpad[n, p*sh + i*dh, q*sw + j*dw, g*a + u]
                                          * w[i, j, u, g*b + v]

where ``srcpad`` is ``src`` zero-dilated by ``lhs_dilation`` and padded by ``pads``. The
forward pass has (a, b) = (C_in/G, C_out/G); the input gradient has (a, b) = (C_out/G,
C_in/G), the output gradient zero-dilated by the stride as its source and the kernel
flipped; the kernel gradient reduces the same windows of the forward source times dy.

The wrapper (``prepare_source``, plain XLA, one fusion) lays the source out so that every
tap is a contiguous, unmasked window of one array and every output channel is one lane:

- channel expansion: copy ``u`` of the source holds, on output channel ``g*b + v``, the
  source channel ``g*a + u`` (a no-op for depthwise, a = b = 1), so the kernel's work is
  a*kh*kw lane-wise multiply-adds per output element, on the VPU, with no lane shuffles;
- padding: spatially as ``pads`` say (negative pads crop), channels up to the lane block;
- stride phases: the padded rows and columns split by residue mod the stride, so that a
  strided tap reads a stride-1 window of one phase (``P = a * sh * sw`` planes);
- row windows: output rows cut into ``R`` blocks of ``rows``, each block's input rows with
  their halo copied out, so that a grid step's input is one non-overlapping block.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from sepconv.conv.geometry import ConvGeometry

Pair = tuple[int, int]

# What the kernels cover: strides and dilations of 1 and 2, up to 8 channels per group on
# either side, and at most MAX_TERMS unrolled multiply-adds per output element.
MAX_STRIDE = 2
MAX_DILATION = 2
MAX_GROUP = 8
MAX_TERMS = 81
DTYPES = ("float32", "bfloat16")


def round_up(n: int, m: int) -> int:
  return -(-n // m) * m


def next_pow2(n: int) -> int:
  return 1 << max(0, int(n) - 1).bit_length()


@dataclasses.dataclass(frozen=True)
class TapSum:
  """One tap-sum problem (see the module docstring); hashable, a static argument."""
  batch: int
  src_hw: Pair
  out_hw: Pair
  groups: int
  a: int
  b: int
  kernel_hw: Pair
  strides: Pair
  dilation: Pair
  pads: tuple[Pair, Pair]
  lhs_dilation: Pair = (1, 1)

  @property
  def channels(self) -> int:
    """Output channels, which are also the expanded source's channels."""
    return self.groups * self.b

  @property
  def phases(self) -> int:
    return self.a * self.strides[0] * self.strides[1]

  @property
  def n_taps(self) -> int:
    return self.kernel_hw[0] * self.kernel_hw[1] * self.a

  @property
  def halo(self) -> Pair:
    """Extra phase rows and columns a window reads past its block of outputs."""
    return tuple((k - 1) * d // s for k, d, s in zip(self.kernel_hw, self.dilation, self.strides))

  def taps(self) -> tuple[tuple[int, int, int, int], ...]:
    """(plane, row offset, column offset, weight row) for every multiply-add term."""
    (kh, kw), (dh, dw), (sh, sw) = self.kernel_hw, self.dilation, self.strides
    out = []
    for i in range(kh):
      for j in range(kw):
        for u in range(self.a):
          plane = u * sh * sw + (i * dh % sh) * sw + j * dw % sw
          out.append((plane, i * dh // sh, j * dw // sw, (i * kw + j) * self.a + u))
    return tuple(out)

  def row_taps(self) -> tuple[tuple[tuple[int, int], tuple[tuple[int, int], ...]], ...]:
    """The taps grouped by the input row they read: ((plane, row offset), ((col, t), ...))."""
    groups: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for plane, dr, dc, t in self.taps():
      groups.setdefault((plane, dr), []).append((dc, t))
    return tuple((key, tuple(v)) for key, v in groups.items())


def forward_problem(geom: ConvGeometry) -> TapSum:
  return TapSum(geom.batch, geom.in_hw, geom.out_hw, geom.groups, geom.group_in,
                geom.group_out, geom.kernel_hw, geom.strides, geom.dilation, geom.pads)


def input_grad_problem(geom: ConvGeometry) -> TapSum:
  """dx as a stride-1 tap sum over dy zero-dilated by the stride, with the kernel flipped."""
  pads = tuple(((k - 1) * d - lo, 0) for k, d, (lo, _) in
               zip(geom.kernel_hw, geom.dilation, geom.pads))
  return TapSum(geom.batch, geom.out_hw, geom.in_hw, geom.groups, geom.group_out,
                geom.group_in, geom.kernel_hw, (1, 1), geom.dilation, pads, geom.strides)


def flipped_kernel(kernel: jax.Array, groups: int) -> jax.Array:
  """(kh, kw, ci, G*co) -> (kh, kw, co, G*ci), spatially flipped, channel roles swapped."""
  kh, kw, ci, cout = kernel.shape
  co = cout // groups
  k = kernel[::-1, ::-1].reshape(kh, kw, ci, groups, co)
  return jnp.transpose(k, (0, 1, 4, 3, 2)).reshape(kh, kw, co, groups * ci)


def geometry_reason(geom: ConvGeometry, name: str) -> str | None:
  """Why the tap-sum kernels ``name`` do not cover ``geom`` (any platform), or None."""
  if geom.dtype not in DTYPES:
    return f"dtype (={geom.dtype}) must be one of {DTYPES} for {name}"
  if max(geom.strides) > MAX_STRIDE:
    return f"strides (={geom.strides}) must be at most {MAX_STRIDE} for {name}"
  if max(geom.dilation) > MAX_DILATION:
    return f"dilation (={geom.dilation}) must be at most {MAX_DILATION} for {name}"
  widest = max(geom.group_in, geom.group_out)
  if widest > MAX_GROUP:
    return (f"channels per group (in {geom.group_in}, out {geom.group_out}) must be at most "
            f"{MAX_GROUP} for {name}")
  terms = geom.kernel_hw[0] * geom.kernel_hw[1] * widest
  if terms > MAX_TERMS:
    return (f"kernel taps x channels per group (={terms}) must be at most {MAX_TERMS} for "
            f"{name}, which unrolls them")
  return None


def kernel_rows(prob: TapSum, weights: jax.Array, cpad: int) -> jax.Array:
  """(kh, kw, a, G*b) -> (kh*kw*a, cpad): one row per tap, channels zero-padded."""
  w = weights.reshape(prob.n_taps, prob.channels)
  return jnp.pad(w, ((0, 0), (0, cpad - prob.channels)))


def _expand(src: jax.Array, prob: TapSum) -> jax.Array:
  """(N, H, W, G*a) -> (N, H, W, a, G*b): copy u holds channel g*a + u on lane g*b + v."""
  n, h, w, _ = src.shape
  if prob.a == 1 and prob.b == 1:
    return src[:, :, :, None, :]
  x = jnp.transpose(src.reshape(n, h, w, prob.groups, prob.a), (0, 1, 2, 4, 3))
  x = jnp.broadcast_to(x[..., None], (n, h, w, prob.a, prob.groups, prob.b))
  return x.reshape(n, h, w, prob.a, prob.channels)


def prepare_source(src: jax.Array, prob: TapSum, rows: int, n_row_blocks: int,
                   out_cols: int, cpad: int) -> jax.Array:
  """The kernel's input: (N, R, P, rows + halo_h, out_cols + halo_w, cpad).

  Block ``r`` holds the phase rows that output rows [r*rows, (r+1)*rows) read; plane
  ``u*sh*sw + ph*sw + pw`` holds expanded copy ``u`` at row phase ph, column phase pw.
  Output rows and columns past ``out_hw`` read zeros (or cropped data) and are dropped.
  """
  (sh, sw), (hh, hw) = prob.strides, prob.halo
  plane_rows = n_row_blocks * rows + hh
  plane_cols = out_cols + hw
  x = _expand(src, prob)
  zero = jnp.zeros((), x.dtype)
  config = [(0, 0, 0)]
  for size, (lo, _), ld, total in zip(prob.src_hw, prob.pads, prob.lhs_dilation,
                                      (plane_rows * sh, plane_cols * sw)):
    dilated = (size - 1) * ld + 1
    config.append((lo, total - dilated - lo, ld - 1))
  config += [(0, 0, 0), (0, cpad - prob.channels, 0)]
  x = lax.pad(x, zero, config)  # (N, plane_rows*sh, plane_cols*sw, a, cpad)
  n = x.shape[0]
  x = x.reshape(n, plane_rows, sh, plane_cols, sw, prob.a, cpad)
  x = jnp.transpose(x, (0, 5, 2, 4, 1, 3, 6)).reshape(n, prob.phases, plane_rows,
                                                       plane_cols, cpad)
  if n_row_blocks == 1:
    return x[:, None]
  return jnp.stack([x[:, :, r * rows:r * rows + rows + hh] for r in range(n_row_blocks)],
                   axis=1)


def pad_output_grad(dy: jax.Array, rows_total: int, cols: int, cpad: int) -> jax.Array:
  """dy (N, Ho, Wo, C) zero-padded to (N, rows_total, cols, cpad)."""
  _, ho, wo, c = dy.shape
  return jnp.pad(dy, ((0, 0), (0, rows_total - ho), (0, cols - wo), (0, cpad - c)))
