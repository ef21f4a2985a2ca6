"""Convolution as matrix products over image chunks (im2col, one chunk at a time).

The weight gradient is the one place XLA:CPU's own convolution is slowest: a dense 3x3
weight gradient on 32x56x56x128 takes about 7x its forward, and grouped ones are
expanded densely. Written as a matrix product it is ``patches^T @ dy``, contracted over
all output positions; im2col of the whole batch would be k*k times the input (462 MB at
that size), so a ``lax.scan`` walks the batch a few images at a time, building each
chunk's patch matrix in cache and accumulating the product, batched over groups. The
forward (``patches @ w``) and its input gradient use the same chunking; they are seldom
the fastest, but they complete the implementation and ``auto`` measures them.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax import lax

from sepconv.conv.shift import acc_dtype
from sepconv.conv.geometry import ConvGeometry

# Images per chunk: as many as keep one chunk's patch matrix under this many bytes.
PATCH_BYTES = 16 << 20


def chunk_images(geom: ConvGeometry) -> int:
  """The largest divisor of the batch whose patch matrix fits PATCH_BYTES."""
  ho, wo = geom.out_hw
  per_image = ho * wo * geom.kernel_hw[0] * geom.kernel_hw[1] * geom.in_channels * 4
  best = 1
  for b in range(1, geom.batch + 1):
    if geom.batch % b == 0 and b * per_image <= PATCH_BYTES:
      best = b
  return best


def _patches(xb: jax.Array, geom: ConvGeometry) -> jax.Array:
  """(b, H, W, G*ci) -> (b*Ho*Wo, G, kh*kw*ci), taps major within each group."""
  (pt, pb), (pl, pr) = geom.pads
  xp = lax.pad(xb, jnp.zeros((), xb.dtype), ((0, 0, 0), (pt, pb, 0), (pl, pr, 0), (0, 0, 0)))
  (ho, wo), (sh, sw), (dh, dw) = geom.out_hw, geom.strides, geom.dilation
  b, groups, ci = xb.shape[0], geom.groups, geom.group_in
  taps = []
  for i in range(geom.kernel_hw[0]):
    for j in range(geom.kernel_hw[1]):
      t = lax.slice(xp, (0, i * dh, j * dw, 0),
                    (b, i * dh + (ho - 1) * sh + 1, j * dw + (wo - 1) * sw + 1, xp.shape[3]),
                    (1, sh, sw, 1))
      taps.append(t.reshape(b * ho * wo, groups, ci))
  return jnp.stack(taps, axis=2).reshape(b * ho * wo, groups, len(taps) * ci)


def _grouped_kernel(kernel: jax.Array, groups: int) -> jax.Array:
  """(kh, kw, ci, G*co) -> (G, kh*kw*ci, co), matching ``_patches``."""
  kh, kw, ci, cout = kernel.shape
  k = kernel.reshape(kh, kw, ci, groups, cout // groups)
  return jnp.transpose(k, (3, 0, 1, 2, 4)).reshape(groups, kh * kw * ci, cout // groups)


def _chunks(a: jax.Array, b: int) -> jax.Array:
  return a.reshape((a.shape[0] // b, b) + a.shape[1:])


def im2col_forward(x: jax.Array, kernel: jax.Array, geom: ConvGeometry) -> jax.Array:
  """y = patches @ w per chunk, batched over groups."""
  b = chunk_images(geom)
  chunk = dataclasses.replace(geom, in_shape=(b,) + geom.in_shape[1:])
  wk = _grouped_kernel(kernel, geom.groups)
  acc = acc_dtype(x.dtype)
  ho, wo = geom.out_hw

  def body(_, xb):
    p = _patches(xb, chunk)  # (P, G, K)
    y = lax.dot_general(p, wk, (((2,), (1,)), ((1,), (0,))), preferred_element_type=acc)
    return None, jnp.transpose(y, (1, 0, 2)).reshape(b, ho, wo, geom.out_channels)

  _, ys = lax.scan(body, None, _chunks(x, b))
  return ys.reshape(geom.out_shape).astype(x.dtype)


def im2col_kernel_grad(x: jax.Array, dy: jax.Array, geom: ConvGeometry) -> jax.Array:
  """dkernel = sum over chunks of patches^T @ dy, batched over groups."""
  b = chunk_images(geom)
  chunk = dataclasses.replace(geom, in_shape=(b,) + geom.in_shape[1:])
  groups, co = geom.groups, geom.group_out
  kh, kw, ci, cout = geom.kernel_shape
  acc = acc_dtype(x.dtype)

  def body(total, xd):
    xb, dyb = xd
    p = _patches(xb, chunk)  # (P, G, K)
    d = dyb.reshape(-1, groups, co)
    return total + lax.dot_general(p, d, (((0,), (0,)), ((1,), (1,))),
                                   preferred_element_type=acc), None

  total, _ = lax.scan(body, jnp.zeros((groups, kh * kw * ci, co), acc),
                      (_chunks(x, b), _chunks(dy, b)))
  total = total.reshape(groups, kh, kw, ci, co)
  return jnp.transpose(total, (1, 2, 3, 0, 4)).reshape(kh, kw, ci, cout).astype(x.dtype)
