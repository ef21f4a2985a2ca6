"""A fused depthwise-separable convolution on TPU: k x k depthwise, then 1x1 pointwise.

``separable_conv(x, dw_kernel, pw_kernel, geom)`` computes
``pointwise(depthwise(x))`` in one kernel: the depthwise output of a block of rows stays
in VMEM (never written to HBM, which is what a MobileNet block spends its memory traffic
on), cast to the input's dtype as the unfused pair would store it, and multiplied by the
pointwise weights on the MXU (``jnp.dot``, float32 accumulation).

Grid (N, R); step (n, r) holds the depthwise input block (P, rows + halo, Wq, Cm) of image
n and row block r with every (lane-padded) middle channel, since each pointwise output
needs all of them, the depthwise weights (taps, Cm), the pointwise weights (Cm, Co), and
writes the output block (rows, Wo16, Co). Footprint in ``footprint``.

The gradient is a ``jax.custom_vjp`` that recomputes the depthwise output with the unfused
kernel (``sepconv.conv.pallas.tpu``), takes the pointwise gradients as matrix products
in XLA, and the depthwise gradients with the unfused gradient kernels.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from sepconv.conv.geometry import ConvGeometry
from sepconv.conv.pallas import taps as tp
from sepconv.conv.pallas import tpu

NAME = "the fused separable pallas_tpu kernel"


def footprint(prob: tp.TapSum, rows: int, cols: int, cm: int, co: int, itemsize: int) -> int:
  """VMEM bytes of one grid step, blocks double-buffered:

  2*P*(rows+hh)*Wq*Cm*s + 2*T*Cm*s + 2*Cm*Co*s + 2*rows*cols*Co*s + cols*(Cm+Co)*4
  (Wq: ``tpu.window_cols``; cols: the output columns rounded up to 8, the matmul's rows).
  """
  return (2 * prob.phases * (rows + prob.halo[0]) * tpu.window_cols(prob, cols) * cm * itemsize
          + 2 * prob.n_taps * cm * itemsize + 2 * cm * co * itemsize
          + 2 * rows * cols * co * itemsize + cols * (cm + co) * 4)


def _blocks(geom: ConvGeometry, out_channels: int):
  """(rows, row blocks, cols, Cm, Co) or None when one output row does not fit."""
  prob = tp.forward_problem(geom)
  ho, wo = prob.out_hw
  cols = tp.round_up(wo, tpu.SUBLANES)
  cm, co = tp.round_up(prob.channels, tpu.LANES), tp.round_up(out_channels, tpu.LANES)
  s = jnp.dtype(geom.dtype).itemsize
  fits = [r for r in range(1, min(ho, tpu.MAX_ROWS) + 1)
          if footprint(prob, r, cols, cm, co, s) <= tpu.VMEM_BUDGET]
  if not fits:
    return None
  n_rows = -(-ho // fits[-1])
  return -(-ho // n_rows), n_rows, cols, cm, co


def support(geom: ConvGeometry, out_channels: int) -> str | None:
  """None if the fused kernel runs depthwise ``geom`` then a 1x1 to ``out_channels`` here."""
  backend = jax.default_backend()
  if backend != "tpu":
    return f"backend (={backend!r}) must be 'tpu': {NAME} is Mosaic TPU code"
  return support_geometry(geom, out_channels)


def support_geometry(geom: ConvGeometry, out_channels: int) -> str | None:
  """Why the fused kernel cannot lower ``geom`` (on any host), or None."""
  reason = tpu.support_geometry(geom)
  if reason is not None:
    return reason
  if _blocks(geom, out_channels) is None:
    return (f"one output row with all channels (={geom.out_channels} -> {out_channels}) must "
            f"fit the VMEM budget (={tpu.VMEM_BUDGET} bytes) of {NAME}")
  return None


def _fused_kernel(x_ref, dw_ref, pw_ref, o_ref, *, row_taps, rows, cols, precision):
  """x_ref (P, rows+hh, Wq, Cm), dw_ref (T, Cm), pw_ref (Cm, Co) -> o_ref (rows, cols, Co)."""
  def row(r, carry):
    acc = jnp.zeros((cols, x_ref.shape[-1]), jnp.float32)
    for t, xs in tpu.shifted_windows(x_ref, r, row_taps, cols):
      acc = acc + xs * dw_ref[pl.ds(t, 1), :].astype(jnp.float32)
    mid = acc.astype(x_ref.dtype)
    out = jnp.dot(mid, pw_ref[...], preferred_element_type=jnp.float32, precision=precision)
    o_ref[r] = out.astype(o_ref.dtype)
    return carry
  lax.fori_loop(0, rows, row, 0)


def fused_forward(x: jax.Array, dw_kernel: jax.Array, pw_kernel: jax.Array,
                  geom: ConvGeometry, interpret=False) -> jax.Array:
  """The fused forward pass alone (no gradient rule); see ``separable_conv``."""
  out_channels = pw_kernel.shape[-1]
  blocks = _blocks(geom, out_channels)
  if blocks is None:
    raise ValueError(support_geometry(geom, out_channels))
  rows, n_rows, cols, cm, co = blocks
  prob = tp.forward_problem(geom)
  wq = tpu.window_cols(prob, cols)
  src = tp.prepare_source(x, prob, rows, n_rows, wq - prob.halo[1], cm)
  dw = tp.kernel_rows(prob, dw_kernel, cm)
  pw = jnp.pad(pw_kernel.reshape(prob.channels, out_channels),
               ((0, cm - prob.channels), (0, co - out_channels)))
  precision = lax.Precision.HIGHEST if x.dtype == jnp.float32 else None
  kernel = functools.partial(_fused_kernel, row_taps=prob.row_taps(), rows=rows, cols=cols,
                             precision=precision)
  out = pl.pallas_call(
      kernel,
      grid=(prob.batch, n_rows),
      in_specs=[pl.BlockSpec((None, None, prob.phases, rows + prob.halo[0], wq, cm),
                             lambda n, r: (n, r, 0, 0, 0, 0)),
                pl.BlockSpec((prob.n_taps, cm), lambda n, r: (0, 0)),
                pl.BlockSpec((cm, co), lambda n, r: (0, 0))],
      out_specs=pl.BlockSpec((None, rows, cols, co), lambda n, r: (n, r, 0, 0)),
      out_shape=jax.ShapeDtypeStruct((prob.batch, n_rows * rows, cols, co), x.dtype),
      compiler_params=pltpu.CompilerParams(dimension_semantics=("parallel", "parallel")),
      interpret=interpret,
      name="sepconv_separable",
  )(src, dw, pw)
  ho, wo = prob.out_hw
  return out[:, :ho, :wo, :out_channels]


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def separable_conv(x: jax.Array, dw_kernel: jax.Array, pw_kernel: jax.Array,
                   geom: ConvGeometry, interpret=False) -> jax.Array:
  """Depthwise (or narrow-group) ``geom`` of x with dw_kernel, then a 1x1 with pw_kernel.

  Args:
    x: (N, H, W, C_in).
    dw_kernel: (kh, kw, C_in/G, C_mid), the convolution ``geom`` describes.
    pw_kernel: (1, 1, C_mid, C_out).
    geom: the depthwise stage's ``ConvGeometry``.
    interpret: Pallas interpret mode (False compiles for TPU).
  """
  return fused_forward(x, dw_kernel, pw_kernel, geom, interpret)


def _fwd(x, dw_kernel, pw_kernel, geom, interpret):
  return fused_forward(x, dw_kernel, pw_kernel, geom, interpret), (x, dw_kernel, pw_kernel)


def _bwd(geom, interpret, residuals, dy):
  x, dw_kernel, pw_kernel = residuals
  mid = tpu.forward(x, dw_kernel, geom, interpret=interpret)
  pw = pw_kernel.reshape(pw_kernel.shape[2:]).astype(jnp.float32)
  g = dy.astype(jnp.float32)
  dpw = jnp.einsum("nhwc,nhwd->cd", mid.astype(jnp.float32), g,
                   precision=lax.Precision.HIGHEST)
  dmid = jnp.einsum("nhwd,cd->nhwc", g, pw, precision=lax.Precision.HIGHEST).astype(x.dtype)
  dx = tpu.input_grad(dmid, dw_kernel, geom, interpret=interpret)
  ddw = tpu.kernel_grad(x, dmid, geom, interpret=interpret)
  return dx, ddw, dpw.reshape(pw_kernel.shape).astype(pw_kernel.dtype)


separable_conv.defvjp(_fwd, _bwd)
