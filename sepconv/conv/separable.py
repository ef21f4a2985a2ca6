"""Spatial (grouped or depthwise) convolution followed directly by a 1x1 convolution.

``separable_conv`` computes ``grouped_conv(spatial)`` then a grouped 1x1 conv. Done as
two calls, the spatial output (as large as the input) goes to memory and comes back;
on CPU that round trip, and the page faults of allocating it, cost about as much as the
spatial convolution itself. The 'fused' implementation walks the batch in chunks of a
few images (``chunk_images``): per chunk the shifted-multiply-add spatial stage runs into
a cache-sized buffer and the 1x1 stage consumes it at once as a matmul. Its custom VJP
walks the chunks again, recomputing each chunk's spatial output instead of storing it,
so the backward pass also keeps the intermediate in cache.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax

from sepconv.conv import autotune, shift
from sepconv.conv.api import grouped_conv
from sepconv.conv.pointwise import matmul_channels
from sepconv.conv.registry import IMPL_TABLE
from sepconv.conv.spec import ConvSpec, Padding, make_spec

SEPARABLE_IMPLS = ("auto", "unfused", "fused", "xla")
# Images per fused chunk are chosen so one chunk's input is at most this many bytes: the
# chunk's spatial output then stays in the last-level cache. On a 2-core host with 32 MiB
# L3, 56x56x128 float32 at 2, 7, 13 and 52 MiB chunks: 7 MiB (4 images) was fastest,
# forward and backward; 1 image per chunk pays too much per-iteration overhead.
CHUNK_BYTES = 8 << 20


def chunk_images(spec: ConvSpec) -> int:
  """Images per chunk: the largest divisor of N whose input stays under CHUNK_BYTES."""
  per_image = spec.in_shape[1] * spec.in_shape[2] * spec.in_shape[3] * 4
  best = 1
  for b in range(1, spec.batch + 1):
    if spec.batch % b == 0 and b * per_image <= CHUNK_BYTES:
      best = b
  return best


def fused_support(spec: ConvSpec, pw_spec: ConvSpec) -> str | None:
  """Why the fused path cannot run this pair, or None."""
  reason = IMPL_TABLE["shift"].support(spec)
  if reason is not None:
    return f"the fused path runs the spatial stage as 'shift': {reason}"
  if not pw_spec.is_pointwise:
    return f"pointwise kernel size (={pw_spec.kernel_hw}) must be (1, 1)"
  return None


def _chunked(x, spec: ConvSpec):
  """x as (chunks, images per chunk, H, W, C) and the spec of one chunk."""
  b = chunk_images(spec)
  chunk = dataclasses.replace(spec, in_shape=(b,) + spec.in_shape[1:])
  return x.reshape((spec.batch // b, b) + x.shape[1:]), chunk


def fused_forward(x, k_spatial, k_point, spec: ConvSpec, pw_spec: ConvSpec):
  """Both stages chunk by chunk; the spatial output never leaves the cache."""
  xs, chunk = _chunked(x, spec)

  def body(_, xb):
    u = shift.shift_forward(xb, k_spatial, chunk)
    return None, matmul_channels(u, k_point[0, 0], pw_spec.groups)

  _, ys = lax.scan(body, None, xs)
  return ys.reshape(pw_spec.out_shape)


def fused_backward(x, k_spatial, k_point, dy, spec: ConvSpec, pw_spec: ConvSpec):
  """(dx, d spatial kernel, d pointwise kernel), chunk by chunk, recomputing the middle."""
  xs, chunk = _chunked(x, spec)
  dys = dy.reshape(xs.shape[:2] + dy.shape[1:])
  acc = shift.acc_dtype(x.dtype)
  kp = k_point[0, 0]
  cmid, cout = pw_spec.in_channels, pw_spec.out_channels

  def body(carry, inputs):
    dks, dkp = carry
    xb, dyb = inputs
    u = shift.shift_forward(xb, k_spatial, chunk)  # recomputed, never stored
    _, pw_vjp = jax.vjp(lambda u_, k_: matmul_channels(u_, k_, pw_spec.groups), u, kp)
    du, dkp_b = pw_vjp(dyb)
    dxb = shift.shift_input_grad(du, k_spatial, chunk)
    dks_b = shift.shift_kernel_grad(xb, du, chunk)
    return (dks + dks_b.astype(acc), dkp + dkp_b.astype(acc)), dxb

  init = (jnp.zeros(k_spatial.shape, acc), jnp.zeros((cmid // pw_spec.groups, cout), acc))
  (dks, dkp), dxs = lax.scan(body, init, (xs, dys))
  return (dxs.reshape(x.shape), dks.astype(k_spatial.dtype),
          dkp.reshape(k_point.shape).astype(k_point.dtype))


def unfused_forward(x, k_spatial, k_point, spec: ConvSpec, pw_spec: ConvSpec, impl="auto"):
  """Two ``grouped_conv`` calls."""
  u = grouped_conv(x, k_spatial, feature_group_count=spec.groups, strides=spec.strides,
                   padding=spec.pads, dilation=spec.dilation, impl=impl)
  return grouped_conv(u, k_point, feature_group_count=pw_spec.groups, strides=1,
                      padding="VALID", impl=impl)


def unfused_backward(x, k_spatial, k_point, dy, spec: ConvSpec, pw_spec: ConvSpec):
  """The VJP of the two calls (each stage with its own auto-chosen gradients)."""
  _, vjp = jax.vjp(lambda a, b, c: unfused_forward(a, b, c, spec, pw_spec), x, k_spatial,
                   k_point)
  return vjp(dy)


STAGE_FNS = {
    "forward": {"fused": fused_forward, "unfused": unfused_forward},
    "backward": {"fused": fused_backward, "unfused": unfused_backward},
}


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5, 6))
def _planned(x, k_spatial, k_point, spec, pw_spec, forward: str, backward: str):
  return STAGE_FNS["forward"][forward](x, k_spatial, k_point, spec, pw_spec)


def _planned_fwd(x, k_spatial, k_point, spec, pw_spec, forward, backward):
  return _planned(x, k_spatial, k_point, spec, pw_spec, forward, backward), (x, k_spatial, k_point)


def _planned_bwd(spec, pw_spec, forward, backward, residuals, dy):
  if backward == "auto":
    backward = autotune.choose_separable(spec, pw_spec, "backward")
  return STAGE_FNS["backward"][backward](*residuals, dy, spec, pw_spec)


_planned.defvjp(_planned_fwd, _planned_bwd)


def _run(x, k_spatial, k_point, spec, pw_spec, impl):
  if impl in ("xla", "unfused"):
    return unfused_forward(x, k_spatial, k_point, spec, pw_spec, "xla" if impl == "xla" else "auto")
  if impl == "fused":
    return _planned(x, k_spatial, k_point, spec, pw_spec, "fused", "fused")
  forward = autotune.choose_separable(spec, pw_spec, "forward")
  return _planned(x, k_spatial, k_point, spec, pw_spec, forward, "auto")


_run_jit = jax.jit(_run, static_argnums=(3, 4, 5))


def separable_conv(
    x: jax.Array,
    spatial_kernel: jax.Array,
    pointwise_kernel: jax.Array,
    *,
    spatial_group_count: int,
    pointwise_group_count: int = 1,
    strides: int | Sequence[int] = 1,
    padding: Padding = "SAME",
    dilation: int | Sequence[int] = 1,
    impl: str = "auto",
) -> jax.Array:
  """A grouped spatial convolution immediately followed by a grouped 1x1 convolution.

  Equals ``grouped_conv(grouped_conv(x, spatial_kernel, feature_group_count=
  spatial_group_count, strides=strides, padding=padding, dilation=dilation),
  pointwise_kernel, feature_group_count=pointwise_group_count)`` with nothing in between
  (no bias, no activation: Xception's finding is that none works best).

  Args:
    x: (N, H, W, C_in).
    spatial_kernel: (kh, kw, C_in // spatial_group_count, C_mid).
    pointwise_kernel: (1, 1, C_mid // pointwise_group_count, C_out).
    spatial_group_count: groups of the spatial stage (C_in for depthwise).
    pointwise_group_count: groups of the 1x1 stage (ShuffleNet uses > 1).
    strides, padding, dilation: of the spatial stage, as in ``grouped_conv``.
    impl: one of ``SEPARABLE_IMPLS``: 'unfused' two ``grouped_conv(impl='auto')`` calls;
      'fused' chunks of images through both stages with the intermediate in cache
      (spatial stage must suit 'shift'); 'xla' both stages native; 'auto' the faster of
      'fused' and 'unfused', measured and cached like ``grouped_conv``'s auto.

  Returns:
    (N, H_out, W_out, C_out).
  """
  if impl not in SEPARABLE_IMPLS:
    raise ValueError(f"impl (={impl!r}) must be one of {SEPARABLE_IMPLS}")
  x = jnp.asarray(x)
  spatial_kernel, pointwise_kernel = jnp.asarray(spatial_kernel), jnp.asarray(pointwise_kernel)
  spec = make_spec(x.shape, spatial_kernel.shape, x.dtype, kernel_dtype=spatial_kernel.dtype,
                   feature_group_count=spatial_group_count, strides=strides, padding=padding,
                   dilation=dilation)
  pw_spec = make_spec(spec.out_shape, pointwise_kernel.shape, x.dtype,
                      kernel_dtype=pointwise_kernel.dtype,
                      feature_group_count=pointwise_group_count, strides=1, padding="VALID",
                      dilation=1)
  if not pw_spec.is_pointwise:
    raise ValueError(f"pointwise kernel shape (={pointwise_kernel.shape}) must be (1, 1, "
                     f"C_mid // pointwise_group_count, C_out)")
  if impl == "fused":
    reason = fused_support(spec, pw_spec)
    if reason is not None:
      raise ValueError(f"impl (='fused') does not support this pair: {reason}")
  return _run_jit(x, spatial_kernel, pointwise_kernel, spec, pw_spec, impl)
