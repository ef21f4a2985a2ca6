"""``conv_general_dilated``: ``jax.lax.conv_general_dilated`` that runs on sepconv where it applies.

Same signature and semantics as ``lax.conv_general_dilated``, so any Flax convolution
takes it with one argument::

  nn.Conv(96, (7, 7), feature_group_count=96, conv_general_dilated=sepconv.conv_general_dilated)
  nnx.Conv(96, 96, (7, 7), feature_group_count=96, rngs=rngs,
           conv_general_dilated=sepconv.conv_general_dilated)

Routing (``route`` says which way a call goes, and why):

* ``grouped_conv(impl="auto")`` for a 2-D convolution with no input (lhs) dilation, one
  batch group, equal floating input and kernel dtypes, no ``precision``, a
  ``preferred_element_type`` that is None or the input dtype, and no other keyword set
  (``out_sharding=None`` is accepted). Padding strings ('SAME', 'VALID', 'SAME_LOWER')
  are resolved to explicit pairs exactly as ``lax`` resolves them.
* Layouts: NHWC x HWIO -> NHWC (Flax's) runs as it is. Any other layout runs transposed
  to NHWC x HWIO and back when the convolution is grouped (``feature_group_count > 1``),
  where ``auto``'s gain over XLA's grouped path is many times the cost of the
  transposes; a dense convolution in another layout goes to ``lax``, where XLA is
  already at its best and the transposes would only add traffic.
* ``lax.conv_general_dilated`` with every argument as given, otherwise (including
  arguments ``lax`` itself rejects, so errors read as ``lax``'s).

Both paths compute the same function; ``jit``, ``grad`` (both arguments), ``vmap`` and
bfloat16 work on both. The sepconv path is reverse-mode differentiable (``jax.custom_vjp``
where ``auto`` mixes implementations), as a training step needs.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from sepconv.conv.api import conv_geometry, grouped_conv

SEPCONV, LAX = "sepconv", "lax"
_NHWC_SPECS = ((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))  # NHWC, HWIO, NHWC as index specs


def _all_ones(values) -> bool:
  return values is None or all(int(v) == 1 for v in values)


def _explicit_padding(padding, in_hw, kernel_hw, strides, rhs_dilation):
  """``padding`` as ((top, bottom), (left, right)), or None if it is not a form lax takes."""
  if isinstance(padding, str):
    dilated = [(k - 1) * d + 1 for k, d in zip(kernel_hw, rhs_dilation)]
    try:
      pads = lax.padtype_to_pads(in_hw, dilated, strides, padding)
    except (TypeError, ValueError):
      return None
  else:
    pads = padding
  try:
    pads = tuple((int(lo), int(hi)) for lo, hi in pads)
  except (TypeError, ValueError):
    return None
  return pads if len(pads) == 2 else None


def _plan(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
          feature_group_count, batch_group_count, precision, preferred_element_type, kwargs):
  """(None, arguments for the NHWC grouped_conv) or (reason for lax, None)."""
  if lhs.ndim != 4 or rhs.ndim != 4:
    return f"{lhs.ndim - 2}-D convolution (sepconv runs 2-D)", None
  if not _all_ones(lhs_dilation):
    return f"lhs_dilation (={tuple(lhs_dilation)})", None
  if batch_group_count != 1:
    return f"batch_group_count (={batch_group_count})", None
  if precision is not None:
    return f"precision (={precision!r})", None
  dtype = np.dtype(lhs.dtype)
  if np.dtype(rhs.dtype) != dtype or not jnp.issubdtype(dtype, jnp.floating):
    return f"dtypes (lhs {dtype.name}, rhs {np.dtype(rhs.dtype).name})", None
  if preferred_element_type is not None and np.dtype(preferred_element_type) != dtype:
    return f"preferred_element_type (={np.dtype(preferred_element_type).name})", None
  extra = sorted(k for k, v in kwargs.items() if v is not None)
  if extra:
    return f"keyword arguments {extra}", None
  try:
    dn = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
  except (TypeError, ValueError):
    return f"dimension_numbers (={dimension_numbers!r})", None
  specs = (tuple(dn.lhs_spec), tuple(dn.rhs_spec), tuple(dn.out_spec))
  if specs != _NHWC_SPECS and feature_group_count == 1:
    return "a dense convolution in a layout other than NHWC x HWIO", None
  lhs_perm = (specs[0][0], specs[0][2], specs[0][3], specs[0][1])
  rhs_perm = (specs[1][2], specs[1][3], specs[1][1], specs[1][0])
  out_perm = (specs[2][0], specs[2][2], specs[2][3], specs[2][1])
  in_hw = tuple(lhs.shape[a] for a in lhs_perm[1:3])
  kernel_hw = tuple(rhs.shape[a] for a in rhs_perm[:2])
  try:
    strides = tuple(int(s) for s in window_strides)
    dilation = (1, 1) if rhs_dilation is None else tuple(int(d) for d in rhs_dilation)
  except (TypeError, ValueError):
    return "window_strides or rhs_dilation not integers", None
  if len(strides) != 2 or len(dilation) != 2:
    return f"window_strides (={window_strides!r}) or rhs_dilation (={rhs_dilation!r})", None
  pads = _explicit_padding(padding, in_hw, kernel_hw, strides, dilation)
  if pads is None:
    return f"padding (={padding!r})", None
  x_shape = jax.ShapeDtypeStruct(tuple(lhs.shape[a] for a in lhs_perm), dtype)
  k_shape = jax.ShapeDtypeStruct(tuple(rhs.shape[a] for a in rhs_perm), dtype)
  try:
    conv_geometry(x_shape, k_shape, feature_group_count=feature_group_count, strides=strides,
                  padding=pads, dilation=dilation)
  except ValueError as error:
    return f"arguments lax must judge ({str(error).splitlines()[0]})", None
  return None, (lhs_perm, rhs_perm, out_perm, strides, pads, dilation)


def route(lhs, rhs, window_strides: Sequence[int], padding, lhs_dilation=None, rhs_dilation=None,
          dimension_numbers=None, feature_group_count: int = 1, batch_group_count: int = 1,
          precision=None, preferred_element_type=None, **kwargs) -> tuple[str, str]:
  """Which way ``conv_general_dilated`` runs these arguments: ('sepconv', '') or ('lax', why)."""
  reason, _ = _plan(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                    dimension_numbers, feature_group_count, batch_group_count, precision,
                    preferred_element_type, kwargs)
  return (LAX, reason) if reason is not None else (SEPCONV, "")


def conv_general_dilated(lhs: jax.Array, rhs: jax.Array, window_strides: Sequence[int], padding,
                         lhs_dilation: Sequence[int] | None = None,
                         rhs_dilation: Sequence[int] | None = None, dimension_numbers=None,
                         feature_group_count: int = 1, batch_group_count: int = 1,
                         precision=None, preferred_element_type=None, **kwargs) -> jax.Array:
  """``jax.lax.conv_general_dilated``, computed by ``sepconv.grouped_conv(impl="auto")`` where it applies.

  Arguments and result are those of ``lax.conv_general_dilated`` (any layout, string or
  explicit padding, input and kernel dilation, feature and batch groups, precision,
  preferred element type); keyword arguments newer ``lax`` versions take (such as
  ``out_sharding``) are passed on to ``lax`` when set. See the module docstring for when
  sepconv runs the call and when ``lax`` does (``route`` tells for given arguments).
  """
  lhs, rhs = jnp.asarray(lhs), jnp.asarray(rhs)
  reason, args = _plan(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                       dimension_numbers, feature_group_count, batch_group_count, precision,
                       preferred_element_type, kwargs)
  if reason is not None:
    if preferred_element_type is not None:
      kwargs["preferred_element_type"] = preferred_element_type
    return lax.conv_general_dilated(
        lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
        dimension_numbers=dimension_numbers, feature_group_count=feature_group_count,
        batch_group_count=batch_group_count, precision=precision, **kwargs)
  lhs_perm, rhs_perm, out_perm, strides, pads, dilation = args
  identity = (0, 1, 2, 3)
  x = lhs if lhs_perm == identity else jnp.transpose(lhs, lhs_perm)
  kernel = rhs if rhs_perm == identity else jnp.transpose(rhs, rhs_perm)
  y = grouped_conv(x, kernel, feature_group_count=feature_group_count, strides=strides,
                   padding=pads, dilation=dilation, impl="auto")
  return y if out_perm == identity else jnp.transpose(y, tuple(np.argsort(out_perm)))
