"""1x1 convolutions as matrix products.

A 1x1 convolution is a matmul over channels; on CPU the einsum form runs on the matmul
kernel directly instead of through the convolution machinery. Strides subsample the
input first; explicit padding only adds output positions whose window is all padding,
which are zeros, so they are padded onto the result instead of the (larger) input.
Grouped 1x1 convolutions are a batched matmul over groups.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from sepconv.conv.shift import acc_dtype, forward_axes
from sepconv.conv.geometry import ConvGeometry


def support(geom: ConvGeometry) -> str | None:
  """Why the matmul path cannot run ``geom``, or None."""
  if not geom.is_pointwise:
    return f"kernel size (={geom.kernel_hw}) must be (1, 1) for the matmul path"
  return None


def matmul_channels(x: jax.Array, kernel2d: jax.Array, groups: int) -> jax.Array:
  """(..., G*ci) x (ci, G*co) -> (..., G*co), accumulating half types in float32."""
  ci, cout = kernel2d.shape
  co = cout // groups
  lead = x.shape[:-1]
  acc = acc_dtype(x.dtype)
  if groups == 1:
    y = lax.dot_general(x, kernel2d, (((x.ndim - 1,), (0,)), ((), ())),
                        preferred_element_type=acc)
  else:
    xg = x.reshape(lead + (groups, ci))
    wg = jnp.transpose(kernel2d.reshape(ci, groups, co), (1, 0, 2))  # (G, ci, co)
    y = jnp.einsum("...gc,gco->...go", xg, wg, preferred_element_type=acc)
  return y.reshape(lead + (cout,)).astype(x.dtype)


def pointwise_conv(x: jax.Array, kernel: jax.Array, geom: ConvGeometry) -> jax.Array:
  """The 1x1 convolution ``geom`` as a matmul."""
  ah, aw = forward_axes(geom)
  (r0, r1), (c0, c1) = ah.valid(0), aw.valid(0)
  ho, wo = geom.out_hw
  if r1 <= r0 or c1 <= c0:
    return jnp.zeros(geom.out_shape, x.dtype)
  h0, w0 = r0 * ah.stride + ah.offsets[0], c0 * aw.stride + aw.offsets[0]
  xs = lax.slice(x, (0, h0, w0, 0),
                 (x.shape[0], h0 + (r1 - r0 - 1) * ah.stride + 1,
                  w0 + (c1 - c0 - 1) * aw.stride + 1, x.shape[3]),
                 (1, ah.stride, aw.stride, 1))
  y = matmul_channels(xs, kernel[0, 0], geom.groups)
  if (r0, r1, c0, c1) != (0, ho, 0, wo):
    y = lax.pad(y, jnp.zeros((), y.dtype),
                ((0, 0, 0), (r0, ho - r1, 0), (c0, wo - c1, 0), (0, 0, 0)))
  return y
