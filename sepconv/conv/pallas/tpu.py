"""Depthwise and narrow-group convolution on TPU (Pallas, Mosaic): forward and both gradients.

``forward(x, kernel, geom)``, ``input_grad(dy, kernel, geom)`` and ``kernel_grad(x, dy,
geom)`` are the ``pallas_tpu`` entry of the implementation table. Every one is a tap sum
(``sepconv.conv.pallas.taps``): the wrapper lays the source out in plain XLA (channels
expanded, padded to the 128 lanes, split into stride phases and row blocks with their
halo), and the kernel accumulates the taps' shifted multiply-adds on the VPU in float32.

Forward and input gradient (one kernel, ``_tap_sum_kernel``): grid (C/cb, N, R); step
(c, n, r) holds the input block (P, rows + halo, Wq, cb) of image n, channel block c, row
block r, the weights (taps, cb) of channel block c (fetched once per c, the outermost
axis), and writes the output block (rows, Wo, cb). Every axis is parallel.

Kernel gradient (``_kernel_grad_kernel``): grid (C/cb, N, R); step (c, n, r) holds the same
input block and the output-gradient block (rows, Wo, cb) and adds its window products
into the float32 (taps, cb) block of channel block c, which stays resident while the two
inner axes (batch, rows; 'arbitrary') walk the reduction.

VMEM: each input and output block is double-buffered; ``footprint`` states the bytes as a
function of the block and ``choose_rows`` takes the most rows (up to ``MAX_ROWS``) whose
footprint fits ``VMEM_BUDGET``, which leaves headroom under v5e's 16 MiB default scoped VMEM.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from sepconv.conv.geometry import ConvGeometry
from sepconv.conv.pallas import taps as tp

LANES = 128
SUBLANES = 8  # input rows are padded to whole sublane tiles so a rotation stays aligned
VMEM_BUDGET = 12 * 2**20
MAX_ROWS = 64
NAME = "the pallas_tpu kernels"


@dataclasses.dataclass(frozen=True)
class BlockSizes:
  """Block sizes of the TPU kernels.

  Attributes:
    channels: lanes per channel block (a multiple of 128).
    rows: output rows per row block, or None for the most that fit ``VMEM_BUDGET``.
  """
  channels: int = LANES
  rows: int | None = None


def footprint(prob: tp.TapSum, rows: int, channels: int, itemsize: int, cols: int,
              kernel_grad: bool = False) -> int:
  """VMEM bytes of one grid step's double-buffered blocks, plus the float32 accumulator.

  forward:     2*P*(rows+hh)*Wq*cb*s  +  2*T*cb*s  +  2*rows*cols*cb*s  +  cols*cb*4
  kernel_grad: 2*P*(rows+hh)*Wq*cb*s  +  2*rows*cols*cb*s  +  2*T*cb*4  +  cols*cb*4
  (P planes, T taps, cb lanes, s the element size, cols the output columns, Wq the input
  columns ``cols + hw`` rounded up to 8).
  """
  src = 2 * prob.phases * (rows + prob.halo[0]) * window_cols(prob, cols) * channels * itemsize
  acc = cols * channels * 4
  weights = 2 * prob.n_taps * channels * (4 if kernel_grad else itemsize)
  return src + weights + 2 * rows * cols * channels * itemsize + acc


def choose_rows(prob: tp.TapSum, channels: int, itemsize: int, kernel_grad=False) -> int | None:
  """Most output rows per block (balanced over the blocks) that fit, or None if one does not."""
  ho, cols = prob.out_hw
  fits = [r for r in range(1, min(ho, MAX_ROWS) + 1)
          if footprint(prob, r, channels, itemsize, cols, kernel_grad) <= VMEM_BUDGET]
  if not fits:
    return None
  blocks = -(-ho // fits[-1])
  return -(-ho // blocks)


def support(geom: ConvGeometry) -> str | None:
  """None if the TPU kernels run ``geom`` on this backend, else why not."""
  backend = jax.default_backend()
  if backend != "tpu":
    return f"backend (={backend!r}) must be 'tpu': {NAME} are Mosaic TPU code"
  return support_geometry(geom)


def support_geometry(geom: ConvGeometry) -> str | None:
  """Why the TPU kernels cannot lower ``geom`` (on any host), or None."""
  reason = tp.geometry_reason(geom, NAME)
  if reason is not None:
    return reason
  itemsize = jnp.dtype(geom.dtype).itemsize
  for prob in (tp.forward_problem(geom), tp.input_grad_problem(geom)):
    for grad in (False, True):
      if choose_rows(prob, LANES, itemsize, grad) is None:
        return (f"one row of the image (={prob.out_hw}, {prob.phases} planes) must fit the "
                f"VMEM budget (={VMEM_BUDGET} bytes) of {NAME}")
  return None


def window_cols(prob: tp.TapSum, cols: int) -> int:
  """Input columns of a block: the output's plus the halo, in whole sublane tiles."""
  return tp.round_up(cols + prob.halo[1], SUBLANES)


def shifted_windows(x_ref, r, row_taps, cols):
  """(weight row, float32 (cols, cb) window) for every tap of output row ``r``.

  Each input row a tap reads is loaded once, aligned, and cast to float32; a column offset
  is a sublane rotation of it (``pltpu.roll``), whose first ``cols`` rows are the window.
  """
  for (plane, dr), col_taps in row_taps:
    full = x_ref[plane, r + dr].astype(jnp.float32)
    n = full.shape[0]
    for dc, t in col_taps:
      shifted = full if dc == 0 else pltpu.roll(full, n - dc, 0)
      yield t, shifted[:cols]


def _tap_sum_kernel(x_ref, w_ref, o_ref, *, row_taps, rows, cols):
  """x_ref (P, rows+hh, Wq, cb), w_ref (T, cb) -> o_ref (rows, cols, cb)."""
  def row(r, carry):
    acc = jnp.zeros((cols, o_ref.shape[-1]), jnp.float32)
    for t, xs in shifted_windows(x_ref, r, row_taps, cols):
      acc = acc + xs * w_ref[pl.ds(t, 1), :].astype(jnp.float32)
    o_ref[r] = acc.astype(o_ref.dtype)
    return carry
  lax.fori_loop(0, rows, row, 0)


def _kernel_grad_kernel(x_ref, dy_ref, o_ref, *, row_taps, rows, cols):
  """x_ref (P, rows+hh, Wq, cb), dy_ref (rows, cols, cb) -> o_ref (T, cb) += sums."""
  @pl.when((pl.program_id(1) == 0) & (pl.program_id(2) == 0))
  def _init():
    o_ref[...] = jnp.zeros(o_ref.shape, o_ref.dtype)

  def row(r, carry):
    g = dy_ref[r].astype(jnp.float32)
    for t, xs in shifted_windows(x_ref, r, row_taps, cols):
      o_ref[pl.ds(t, 1), :] += jnp.sum(xs * g, axis=0, keepdims=True)
    return carry
  lax.fori_loop(0, rows, row, 0)


def _layout(prob: tp.TapSum, blocks: BlockSizes, itemsize: int, kernel_grad: bool):
  if blocks.channels % LANES:
    raise ValueError(f"channel block (={blocks.channels}) must be a multiple of {LANES}")
  rows = blocks.rows or choose_rows(prob, blocks.channels, itemsize, kernel_grad)
  if rows is None:
    raise ValueError(f"no row block of the output (={prob.out_hw}) fits the VMEM budget "
                     f"(={VMEM_BUDGET} bytes) of {NAME}")
  n_rows = -(-prob.out_hw[0] // rows)
  cols = prob.out_hw[1]  # a block dim equal to the array's: no column padding
  cpad = tp.round_up(prob.channels, blocks.channels)
  return rows, n_rows, cols, cpad


def _specs(prob: tp.TapSum, rows: int, cols: int, cb: int):
  return pl.BlockSpec((None, None, prob.phases, rows + prob.halo[0], window_cols(prob, cols), cb),
                      lambda c, n, r: (n, r, 0, 0, 0, c))


def tap_sum(src: jax.Array, weights: jax.Array, prob: tp.TapSum, *,
            blocks: BlockSizes = BlockSizes(), interpret=False) -> jax.Array:
  """The tap sum ``prob`` of ``src`` (N, H, W, G*a) with weights (kh, kw, a, G*b)."""
  rows, n_rows, cols, cpad = _layout(prob, blocks, src.dtype.itemsize, False)
  cb = blocks.channels
  x = tp.prepare_source(src, prob, rows, n_rows, window_cols(prob, cols) - prob.halo[1], cpad)
  w = tp.kernel_rows(prob, weights, cpad)
  kernel = functools.partial(_tap_sum_kernel, row_taps=prob.row_taps(), rows=rows, cols=cols)
  out = pl.pallas_call(
      kernel,
      grid=(cpad // cb, prob.batch, n_rows),
      in_specs=[_specs(prob, rows, cols, cb),
                pl.BlockSpec((prob.n_taps, cb), lambda c, n, r: (0, c))],
      out_specs=pl.BlockSpec((None, rows, cols, cb), lambda c, n, r: (n, r, 0, c)),
      out_shape=jax.ShapeDtypeStruct((prob.batch, n_rows * rows, cols, cpad), src.dtype),
      compiler_params=pltpu.CompilerParams(
          dimension_semantics=("parallel", "parallel", "parallel"),
          allow_input_fusion=[True, False]),
      interpret=interpret,
      name="sepconv_tap_sum",
  )(x, w)
  ho, wo = prob.out_hw
  return out[:, :ho, :wo, :prob.channels]


def tap_kernel_grad(src: jax.Array, dy: jax.Array, prob: tp.TapSum, *,
                    blocks: BlockSizes = BlockSizes(), interpret=False) -> jax.Array:
  """d(tap sum)/d(weights) contracted with ``dy``: (kh, kw, a, G*b), in ``src``'s dtype."""
  rows, n_rows, cols, cpad = _layout(prob, blocks, src.dtype.itemsize, True)
  cb = blocks.channels
  x = tp.prepare_source(src, prob, rows, n_rows, window_cols(prob, cols) - prob.halo[1], cpad)
  g = tp.pad_output_grad(dy, n_rows * rows, cols, cpad)
  kernel = functools.partial(_kernel_grad_kernel, row_taps=prob.row_taps(), rows=rows, cols=cols)
  out = pl.pallas_call(
      kernel,
      grid=(cpad // cb, prob.batch, n_rows),
      in_specs=[_specs(prob, rows, cols, cb),
                pl.BlockSpec((None, rows, cols, cb), lambda c, n, r: (n, r, 0, c))],
      out_specs=pl.BlockSpec((prob.n_taps, cb), lambda c, n, r: (0, c)),
      out_shape=jax.ShapeDtypeStruct((prob.n_taps, cpad), jnp.float32),
      compiler_params=pltpu.CompilerParams(
          dimension_semantics=("parallel", "arbitrary", "arbitrary"),
          allow_input_fusion=[True, True]),
      interpret=interpret,
      name="sepconv_tap_kernel_grad",
  )(x, g)
  (kh, kw), a = prob.kernel_hw, prob.a
  return out[:, :prob.channels].reshape(kh, kw, a, prob.channels).astype(src.dtype)


def forward(x: jax.Array, kernel: jax.Array, geom: ConvGeometry, *,
            blocks: BlockSizes = BlockSizes(), interpret=False) -> jax.Array:
  """The convolution ``geom`` of x (N, H, W, C_in) with kernel (kh, kw, C_in/G, C_out)."""
  return tap_sum(x, kernel, tp.forward_problem(geom), blocks=blocks, interpret=interpret)


def input_grad(dy: jax.Array, kernel: jax.Array, geom: ConvGeometry, *,
               blocks: BlockSizes = BlockSizes(), interpret=False) -> jax.Array:
  """d(loss)/dx: the forward kernel over dy zero-dilated by the stride, kernel flipped."""
  prob = tp.input_grad_problem(geom)
  return tap_sum(dy, tp.flipped_kernel(kernel, geom.groups), prob, blocks=blocks,
                 interpret=interpret)


def kernel_grad(x: jax.Array, dy: jax.Array, geom: ConvGeometry, *,
                blocks: BlockSizes = BlockSizes(), interpret=False) -> jax.Array:
  """d(loss)/d(kernel): (kh, kw, C_in/G, C_out), reduced over batch and space in float32."""
  return tap_kernel_grad(x, dy, tp.forward_problem(geom), blocks=blocks, interpret=interpret)
