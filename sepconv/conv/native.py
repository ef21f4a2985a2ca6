"""Convolutions that stay XLA convolutions: native, native without YNNPACK, channel blocks.

On CPU, recent XLA routes NHWC convolutions through a YNNPACK fusion, which is slow for
grouped convolutions (several times slower than XLA's own Eigen kernel at 16-64 channels
per group). The option ``xla_cpu_experimental_ynn_fusion_type=""`` turns it off, but
compiler options belong to a whole executable: jax 0.10 refuses them on a nested jit
("`compiler_options` can only be passed to top-level `jax.jit`"), and a layer's conv
always runs nested in the caller's jitted step. ``xla_noynn`` therefore opts a single
convolution out by a property the YNNPACK matcher rejects (``IsConvolutionOpSupportedByYnn``:
an output larger than its input in a spatial dimension): it pads the bottom with enough
extra rows for one output row more than the input has, and drops the extra rows. The
cost is those rows of work (one row at stride 1, about the input height at stride 2)
plus a slice that fuses into whatever consumes the result. ``CPU_NO_YNN_OPTIONS`` is the
whole-program alternative for callers who own the outermost ``jax.jit``.

The other way round also pays: YNNPACK is the fast kernel for dense convolutions, so
``supergroup`` runs a grouped convolution as dense convolutions over channel blocks.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from sepconv.conv.geometry import ConvGeometry
from sepconv.conv.layout import block_diagonal

DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")
CPU_NO_YNN_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}


def always_supported(geom: ConvGeometry) -> None:
  """These stay XLA convolutions: every configuration is supported."""
  return None


def xla_conv(x: jax.Array, kernel: jax.Array, geom: ConvGeometry) -> jax.Array:
  """``lax.conv_general_dilated`` itself: the reference."""
  return lax.conv_general_dilated(
      x, kernel, window_strides=geom.strides, padding=geom.pads, rhs_dilation=geom.dilation,
      dimension_numbers=DIMENSION_NUMBERS, feature_group_count=geom.groups)


def noynn_extra_rows(geom: ConvGeometry) -> int:
  """Bottom padding rows that make the output one row taller than the input."""
  ho, h, s = geom.out_hw[0], geom.in_hw[0], geom.strides[0]
  return max(0, (h + 1 - ho) * s)


def xla_noynn_conv(x: jax.Array, kernel: jax.Array, geom: ConvGeometry) -> jax.Array:
  """The native convolution kept off the CPU YNNPACK fusion (see module docstring)."""
  (pt, pb), pw = geom.pads
  extra = noynn_extra_rows(geom)
  y = lax.conv_general_dilated(
      x, kernel, window_strides=geom.strides, padding=((pt, pb + extra), pw),
      rhs_dilation=geom.dilation, dimension_numbers=DIMENSION_NUMBERS,
      feature_group_count=geom.groups)
  return y[:, :geom.out_hw[0]]


def dense_conv(x: jax.Array, kernel: jax.Array, geom: ConvGeometry) -> jax.Array:
  """The grouped convolution as one dense convolution with a block-diagonal kernel.

  G times the arithmetic, but on the fastest kernel XLA has; its gradients are dense
  convolutions too, so it avoids the CPU weight-gradient expansion of grouped convs.
  """
  return lax.conv_general_dilated(
      x, block_diagonal(kernel, geom.groups), window_strides=geom.strides, padding=geom.pads,
      rhs_dilation=geom.dilation, dimension_numbers=DIMENSION_NUMBERS)


# Forward and input gradient: channel blocks narrower than 32 leave the fast dense kernel
# (YNNPACK takes convolutions only above 16 channels), so blocks hold several groups,
# block-diagonally, until 32 wide. Weight gradient: 16-wide blocks measured faster.
SUPERGROUP_MIN_CHANNELS = 32
SUPERGROUP_MIN_CHANNELS_KERNEL_GRAD = 16


def supergroup_count(geom: ConvGeometry, min_channels: int = SUPERGROUP_MIN_CHANNELS) -> int:
  """Number of dense channel blocks: one per group, or fewer so each is wide enough."""
  per_block = max(1, -(-min_channels // geom.group_in))  # groups per block
  blocks = geom.groups // per_block
  while blocks > 1 and geom.groups % blocks:
    blocks -= 1
  return max(1, blocks)


def _blocks(geom: ConvGeometry, min_channels: int):
  """(number of blocks, groups per block, input and output channels per block)."""
  blocks = supergroup_count(geom, min_channels)
  return (blocks, geom.groups // blocks, geom.in_channels // blocks,
          geom.out_channels // blocks)


def _block_conv(xb: jax.Array, kb: jax.Array, per_block: int, geom: ConvGeometry) -> jax.Array:
  """One channel block as a dense convolution (block-diagonal over its groups)."""
  if per_block > 1:
    kb = block_diagonal(kb, per_block)
  return lax.conv_general_dilated(
      xb, kb, window_strides=geom.strides, padding=geom.pads, rhs_dilation=geom.dilation,
      dimension_numbers=DIMENSION_NUMBERS)


def supergroup_conv(x: jax.Array, kernel: jax.Array, geom: ConvGeometry,
                    min_channels: int = SUPERGROUP_MIN_CHANNELS) -> jax.Array:
  """The grouped convolution as dense convolutions over blocks of channels.

  Each block holds G/S whole groups as a block-diagonal dense kernel: S dense convs
  with (G/S) times the grouped arithmetic each, so S = G (no waste) once groups are
  ``min_channels`` wide, and blocks of ``min_channels`` channels below that.
  """
  blocks, per_block, cin, cout = _blocks(geom, min_channels)
  outs = [_block_conv(x[..., b * cin:(b + 1) * cin], kernel[..., b * cout:(b + 1) * cout],
                      per_block, geom) for b in range(blocks)]
  return outs[0] if blocks == 1 else jnp.concatenate(outs, axis=-1)


def supergroup_input_grad(dy: jax.Array, kernel: jax.Array, geom: ConvGeometry) -> jax.Array:
  """dx block by block (the forward's 32-wide blocks), concatenated over channels.

  Differentiating ``supergroup_conv`` as a whole would pad every block's gradient to all
  channels and sum them, one full pass per block.
  """
  blocks, per_block, cin, cout = _blocks(geom, SUPERGROUP_MIN_CHANNELS)
  n, h, w, _ = geom.in_shape
  parts = []
  for b in range(blocks):
    kb = kernel[..., b * cout:(b + 1) * cout]
    dyb = dy[..., b * cout:(b + 1) * cout]
    if geom.strides == (1, 1):
      parts.append(_transposed_block_conv(dyb, kb, per_block, geom))
      continue
    _, vjp = jax.vjp(lambda xb: _block_conv(xb, kb, per_block, geom),
                     jnp.zeros((n, h, w, cin), dy.dtype))
    parts.append(vjp(dyb)[0])
  return parts[0] if blocks == 1 else jnp.concatenate(parts, axis=-1)


def _transposed_block_conv(dyb, kb, per_block: int, geom: ConvGeometry):
  """A stride-1 block's input gradient as a forward conv with the flipped, transposed kernel.

  XLA's own transpose sets window reversal on the convolution, which the CPU YNNPACK
  kernel refuses (the slower Eigen kernel runs it); reversing the small kernel instead
  keeps the input gradient as fast as the forward.
  """
  if per_block > 1:
    kb = block_diagonal(kb, per_block)
  kt = jnp.transpose(jnp.flip(kb, (0, 1)), (0, 1, 3, 2))
  pads = tuple(((k - 1) * d - lo, size - out + lo)
               for (lo, _), k, d, size, out in zip(geom.pads, geom.kernel_hw, geom.dilation,
                                                   geom.in_hw, geom.out_hw))
  return lax.conv_general_dilated(dyb, kt, window_strides=(1, 1), padding=pads,
                                  rhs_dilation=geom.dilation,
                                  dimension_numbers=DIMENSION_NUMBERS)


def supergroup_kernel_grad(x: jax.Array, dy: jax.Array, geom: ConvGeometry) -> jax.Array:
  """dkernel block by block through 16-wide blocks: less block-diagonal waste, faster."""
  blocks, per_block, cin, cout = _blocks(geom, SUPERGROUP_MIN_CHANNELS_KERNEL_GRAD)
  kh, kw, ci, _ = geom.kernel_shape
  parts = []
  for b in range(blocks):
    xb = x[..., b * cin:(b + 1) * cin]
    _, vjp = jax.vjp(lambda kb: _block_conv(xb, kb, per_block, geom),
                     jnp.zeros((kh, kw, ci, cout), x.dtype))
    parts.append(vjp(dy[..., b * cout:(b + 1) * cout])[0])
  return parts[0] if blocks == 1 else jnp.concatenate(parts, axis=-1)
