"""The public entry point ``grouped_conv``: validate, pick a plan, run it jitted."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from sepconv.conv import policy, table
from sepconv.conv.choice import PLATFORMS, check_platform
from sepconv.conv.geometry import ConvGeometry, Padding, make_geometry
from sepconv.conv.plan import Plan, PlatformPlans, run_plan_jit, run_platform_plans_jit
from sepconv.conv.platform_guard import guard
from sepconv.conv.table import COMPUTATIONS, CONCRETE, IMPL_TABLE, check_supported
from sepconv.conv.tune_cache import host_platform

IMPLS = ("auto",) + CONCRETE


def conv_geometry(x, kernel, *, feature_group_count: int = 1, strides=1, padding: Padding = "SAME",
              dilation=1) -> ConvGeometry:
  """The validated ``ConvGeometry`` of a ``grouped_conv`` call (arrays or ShapeDtypeStructs)."""
  return make_geometry(x.shape, kernel.shape, x.dtype, kernel_dtype=kernel.dtype,
                   feature_group_count=feature_group_count, strides=strides, padding=padding,
                   dilation=dilation)


def plan_for(geom: ConvGeometry, impl: str = "auto", platform: str | None = None) -> Plan:
  """The plan ``grouped_conv`` runs for ``geom`` and ``impl`` on ``platform`` (default: the
  host's), ValueError if unsupported."""
  if impl == "auto":
    host = host_platform()
    platform = check_platform(platform or host)
    if platform == host:
      # The forward is chosen now; the gradients when a backward pass is traced.
      return Plan(policy.choose(geom, "forward", platform), "auto", "auto", platform)
    # Not measurable here: chosen whole, now.
    return Plan(*(policy.choose(geom, c, platform) for c in COMPUTATIONS))
  if impl not in IMPLS:
    raise ValueError(f"impl (={impl!r}) must be one of {IMPLS}")
  check_supported(impl, geom)
  if platform is not None and not IMPL_TABLE[impl].runs_on(check_platform(platform)):
    raise ValueError(f"impl (={impl!r}) cannot be lowered for platform (={platform!r}): "
                     f"{table.cannot_lower(platform)[impl]}")
  return Plan.single(impl)


def platform_plans(geom: ConvGeometry) -> PlatformPlans:
  """``impl="auto"``'s plan for ``geom`` on every platform it may be lowered for."""
  return tuple((platform, plan_for(geom, "auto", platform)) for platform in PLATFORMS)


def grouped_conv(
    x: jax.Array,
    kernel: jax.Array,
    *,
    feature_group_count: int = 1,
    strides: int | Sequence[int] = 1,
    padding: Padding = "SAME",
    dilation: int | Sequence[int] = 1,
    impl: str = "auto",
) -> jax.Array:
  """NHWC x HWIO grouped convolution, a drop-in for ``lax.conv_general_dilated``.

  Same semantics and parameter layout as ``lax.conv_general_dilated(x, kernel, strides,
  padding, rhs_dilation=dilation, dimension_numbers=("NHWC", "HWIO", "NHWC"),
  feature_group_count=feature_group_count)``; ``impl`` chooses how it is computed.

  Args:
    x: input, shape (N, H, W, C_in), a floating dtype (bfloat16 sums in float32).
    kernel: shape (kh, kw, C_in // feature_group_count, C_out), same dtype as ``x``.
      Depth multiplier m: feature_group_count = C_in and C_out = m * C_in.
    feature_group_count: number of groups G; C_in and C_out must divide by G.
    strides: int or (sh, sw).
    padding: 'SAME', 'VALID', an int (both sides of both axes), or
      ((top, bottom), (left, right)); negative values crop.
    dilation: kernel (rhs) dilation, int or (dh, dw).
    impl: one of ``IMPLS``:
      'xla' native ``lax.conv_general_dilated`` (the reference);
      'xla_noynn' native, kept off the CPU YNNPACK fusion;
      'shift' shifted multiply-adds in one fused loop, with its own gradients
        (depthwise, depth multipliers, up to 8 channels per group);
      'dense' one dense convolution with a block-diagonal kernel;
      'supergroup' dense convolutions over channel blocks of whole groups, with its
        own gradients (narrower blocks for the kernel gradient, the input gradient
        as a forward conv with the flipped kernel, which YNNPACK accepts);
      'pointwise' 1x1 kernels as a matmul (batched over groups);
      'im2col' matrix products over chunks of images (patches built in cache), its
        weight gradient ``patches^T @ dy`` the fastest on CPU for wide groups;
      'ffi' sepconv's own C++ CPU kernels through XLA's FFI, with their own gradients
        (float32 on CPU; an optional extension: unsupported, saying why, where it is not
        built or disabled, see ``sepconv.conv.ffi``; lowered for another platform, a
        ValueError says so);
      'auto' the fastest of those for the platform the computation is lowered for, shape
        and dtype, chosen per forward, input gradient and kernel gradient (see
        ``sepconv.conv.policy``); one traced function exports for CPU, TPU and GPU alike.
      'shift', 'supergroup', 'im2col', 'ffi', and 'auto' when it mixes implementations,
      are reverse-mode differentiable only (``jax.custom_vjp``).

  Returns:
    (N, H_out, W_out, C_out), dtype of ``x``.

  Raises:
    ValueError: bad shapes or arguments, an unknown ``impl``, or an ``impl`` that does
      not support this configuration (the message says why).
  """
  if impl not in IMPLS:
    raise ValueError(f"impl (={impl!r}) must be one of {IMPLS}")
  x, kernel = jnp.asarray(x), jnp.asarray(kernel)
  geom = conv_geometry(x, kernel, feature_group_count=feature_group_count, strides=strides,
                   padding=padding, dilation=dilation)
  if impl == "auto":
    return run_platform_plans_jit(x, kernel, geom, platform_plans(geom))
  plan = plan_for(geom, impl)
  platforms = IMPL_TABLE[impl].platforms
  if platforms is not None:  # lowered for another platform, a ValueError says so
    x = guard(x, impl, platforms)
  return run_plan_jit(x, kernel, geom, plan)
