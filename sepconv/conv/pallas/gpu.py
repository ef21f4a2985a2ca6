"""Depthwise and narrow-group convolution on GPU (Pallas, Triton lowering), both gradients.

``forward``, ``input_grad`` and ``kernel_grad`` are the ``pallas_gpu`` entry of the
implementation table. The wrapper lays the source out as for the TPU kernels
(``sepconv.conv.pallas.taps``, one row block), padded so that every load is an unmasked
(cols, cb) tile with both sizes powers of two, as Triton requires.

Forward and input gradient (``_tap_sum_kernel``): grid (N*Ho, Wo/cols, C/cb); program
(n*Ho + p, w, c) computes output row p of image n, columns [w*cols, (w+1)*cols) and
channels [c*cb, (c+1)*cb): a (cols, cb) float32 accumulator of the taps' multiply-adds.

Kernel gradient (``_kernel_grad_kernel``, the slow path of XLA's grouped backward on GPU):
grid (N, taps, C/cb); program (n, t, c) loops over the rows and column blocks of image n,
accumulating tap t's window times dy (a masked load: dy is not padded) in a (cols, cb)
float32 tile, then reduces it over the columns into partial[n, t, c-block]; the wrapper sums
the N partials.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton

from sepconv.conv.geometry import ConvGeometry
from sepconv.conv.pallas import taps as tp

NAME = "the pallas_gpu kernels"
# The custom-call target of a Triton kernel; jax.export needs it named in disabled_checks.
TRITON_TARGET = "__gpu$xla.gpu.triton"


@dataclasses.dataclass(frozen=True)
class BlockSizes:
  """Tile of one program: ``cols`` output columns x ``channels`` channels (powers of two).

  None takes the output's width (channel count) rounded up to a power of two, capped at
  32 columns (64 channels).
  """
  cols: int | None = None
  channels: int | None = None
  num_warps: int = 4

  def resolve(self, out_cols: int, channels: int) -> tuple[int, int]:
    cols = self.cols or min(32, tp.next_pow2(out_cols))
    cb = self.channels or min(64, tp.next_pow2(channels))
    for name, v in (("cols", cols), ("channels", cb)):
      if v & (v - 1):
        raise ValueError(f"block {name} (={v}) must be a power of two for Triton")
    return cols, cb


def _is_cuda() -> bool:
  try:
    device = jax.devices()[0]
  except RuntimeError:
    return False
  return device.platform == "gpu" and "rocm" not in str(
      getattr(device.client, "platform_version", "")).lower()


def support(geom: ConvGeometry) -> str | None:
  """None if the GPU kernels run ``geom`` on this backend, else why not."""
  backend = jax.default_backend()
  if backend != "gpu" or not _is_cuda():
    return f"backend (={backend!r}) must be a CUDA GPU: {NAME} are Triton code"
  return support_geometry(geom)


def support_geometry(geom: ConvGeometry) -> str | None:
  """Why the GPU kernels cannot lower ``geom`` (on any host), or None."""
  return tp.geometry_reason(geom, NAME)


def _compiler_params(blocks: BlockSizes):
  return pltriton.CompilerParams(num_warps=blocks.num_warps, num_stages=1)


def _tap_sum_kernel(x_ref, w_ref, o_ref, *, taps, out_rows, cols, cb):
  """x_ref (N, P, Hq, Wq, C), w_ref (T, C) -> o_ref (N, Ho, Wo, C), one (cols, cb) tile.

  The store is masked to the output's columns and channels: no padded output to crop.
  """
  pid = pl.program_id(0)
  n, p = lax.div(pid, out_rows), lax.rem(pid, out_rows)
  w0 = pl.program_id(1) * cols
  c0 = pl.program_id(2) * cb
  acc = jnp.zeros((cols, cb), jnp.float32)
  for plane, dr, dc, t in taps:
    xs = x_ref[n, plane, p + dr, pl.ds(w0 + dc, cols), pl.ds(c0, cb)].astype(jnp.float32)
    acc += xs * w_ref[t, pl.ds(c0, cb)].astype(jnp.float32)[None, :]
  col = w0 + lax.broadcasted_iota(jnp.int32, (cols, cb), 0)
  chan = c0 + lax.broadcasted_iota(jnp.int32, (cols, cb), 1)
  pltriton.store(o_ref.at[n, p, pl.ds(w0, cols), pl.ds(c0, cb)], acc.astype(o_ref.dtype),
                 mask=(col < o_ref.shape[2]) & (chan < o_ref.shape[3]))


def _kernel_grad_kernel(x_ref, dy_ref, o_ref, *, taps, out_rows, col_blocks, cols, cb):
  """Partial sums of tap t over image n: o_ref (N, T, C)[n, t, c-block]."""
  n, t_id, c = pl.program_id(0), pl.program_id(1), pl.program_id(2)
  c0 = c * cb
  chan = c0 + lax.broadcasted_iota(jnp.int32, (cols, cb), 1)

  def one_tap(plane, dr, dc):
    def body(i, acc):
      if col_blocks == 1:
        p, w0 = i, 0
      else:
        p, w0 = lax.div(i, col_blocks), lax.rem(i, col_blocks) * cols
      xs = x_ref[n, plane, p + dr, pl.ds(w0 + dc, cols), pl.ds(c0, cb)].astype(jnp.float32)
      col = w0 + lax.broadcasted_iota(jnp.int32, (cols, cb), 0)
      mask = (col < dy_ref.shape[2]) & (chan < dy_ref.shape[3])
      g = pltriton.load(dy_ref.at[n, p, pl.ds(w0, cols), pl.ds(c0, cb)], mask=mask,
                        other=0.0).astype(jnp.float32)
      return acc + xs * g
    acc = lax.fori_loop(0, out_rows * col_blocks, body, jnp.zeros((cols, cb), jnp.float32))
    return jnp.sum(acc, axis=0)

  # The tap is a grid axis; its static offsets are chosen by a switch on the program id.
  branches = [functools.partial(one_tap, plane, dr, dc) for plane, dr, dc, _ in taps]
  total = lax.switch(t_id, branches) if len(branches) > 1 else branches[0]()
  o_ref[n, t_id, pl.ds(c0, cb)] = total


def _layout(prob: tp.TapSum, blocks: BlockSizes):
  ho, wo = prob.out_hw
  cols, cb = blocks.resolve(wo, prob.channels)
  col_blocks = -(-wo // cols)
  return cols, cb, col_blocks, tp.round_up(prob.channels, cb)


def tap_sum(src: jax.Array, weights: jax.Array, prob: tp.TapSum, *,
            blocks: BlockSizes = BlockSizes(), interpret=False) -> jax.Array:
  """The tap sum ``prob`` of ``src`` (N, H, W, G*a) with weights (kh, kw, a, G*b)."""
  cols, cb, col_blocks, cpad = _layout(prob, blocks)
  ho, wo = prob.out_hw
  x = tp.prepare_source(src, prob, ho, 1, col_blocks * cols, cpad)[:, 0]
  w = tp.kernel_rows(prob, weights, cpad)
  kernel = functools.partial(_tap_sum_kernel, taps=prob.taps(), out_rows=ho, cols=cols, cb=cb)
  out = pl.pallas_call(
      kernel,
      grid=(prob.batch * ho, col_blocks, cpad // cb),
      out_shape=jax.ShapeDtypeStruct((prob.batch, ho, wo, prob.channels), src.dtype),
      compiler_params=_compiler_params(blocks),
      interpret=interpret,
      name="sepconv_tap_sum_gpu",
  )(x, w)
  return out


def tap_kernel_grad(src: jax.Array, dy: jax.Array, prob: tp.TapSum, *,
                    blocks: BlockSizes = BlockSizes(), interpret=False) -> jax.Array:
  """d(tap sum)/d(weights) contracted with ``dy``: (kh, kw, a, G*b), in ``src``'s dtype."""
  cols, cb, col_blocks, cpad = _layout(prob, blocks)
  ho, _ = prob.out_hw
  x = tp.prepare_source(src, prob, ho, 1, col_blocks * cols, cpad)[:, 0]
  kernel = functools.partial(_kernel_grad_kernel, taps=prob.taps(), out_rows=ho,
                             col_blocks=col_blocks, cols=cols, cb=cb)
  partial = pl.pallas_call(
      kernel,
      grid=(prob.batch, prob.n_taps, cpad // cb),
      out_shape=jax.ShapeDtypeStruct((prob.batch, prob.n_taps, cpad), jnp.float32),
      compiler_params=_compiler_params(blocks),
      interpret=interpret,
      name="sepconv_tap_kernel_grad_gpu",
  )(x, dy)
  (kh, kw), a = prob.kernel_hw, prob.a
  total = jnp.sum(partial, axis=0)[:, :prob.channels]
  return total.reshape(kh, kw, a, prob.channels).astype(src.dtype)


def forward(x: jax.Array, kernel: jax.Array, geom: ConvGeometry, *,
            blocks: BlockSizes = BlockSizes(), interpret=False) -> jax.Array:
  """The convolution ``geom`` of x (N, H, W, C_in) with kernel (kh, kw, C_in/G, C_out)."""
  return tap_sum(x, kernel, tp.forward_problem(geom), blocks=blocks, interpret=interpret)


def input_grad(dy: jax.Array, kernel: jax.Array, geom: ConvGeometry, *,
               blocks: BlockSizes = BlockSizes(), interpret=False) -> jax.Array:
  """d(loss)/dx: the forward kernel over dy zero-dilated by the stride, kernel flipped."""
  return tap_sum(dy, tp.flipped_kernel(kernel, geom.groups), tp.input_grad_problem(geom),
                 blocks=blocks, interpret=interpret)


def kernel_grad(x: jax.Array, dy: jax.Array, geom: ConvGeometry, *,
                blocks: BlockSizes = BlockSizes(), interpret=False) -> jax.Array:
  """d(loss)/d(kernel): (kh, kw, C_in/G, C_out), reduced over batch and space in float32."""
  return tap_kernel_grad(x, dy, tp.forward_problem(geom), blocks=blocks, interpret=interpret)
