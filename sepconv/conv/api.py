"""The ``grouped_conv`` entry point and its argument normalisation."""

from __future__ import annotations

from collections.abc import Sequence

import jax
from jax import lax

Padding = str | int | Sequence[tuple[int, int]]

IMPLS = ("xla",)


def _pair(value, name: str) -> tuple[int, int]:
  if isinstance(value, int):
    value = (value, value)
  value = tuple(int(v) for v in value)
  if len(value) != 2 or min(value) < 1:
    raise ValueError(f"{name} (={value}) must be a positive int or a pair of positive ints")
  return value


def normalize_padding(padding: Padding) -> str | tuple[tuple[int, int], tuple[int, int]]:
  """'SAME'/'VALID', an int (symmetric), or ((top, bottom), (left, right))."""
  if isinstance(padding, str):
    if padding.upper() not in ("SAME", "VALID"):
      raise ValueError(f"padding (={padding!r}) must be 'SAME', 'VALID', an int or two (low, high) pairs")
    return padding.upper()
  if isinstance(padding, int):
    return ((padding, padding), (padding, padding))
  pads = tuple(tuple(int(p) for p in pair) for pair in padding)
  if len(pads) != 2 or any(len(p) != 2 for p in pads):
    raise ValueError(f"padding (={padding!r}) must be two (low, high) pairs for H and W")
  return pads


def grouped_conv(
    x: jax.Array,
    kernel: jax.Array,
    *,
    feature_group_count: int = 1,
    strides: int | Sequence[int] = 1,
    padding: Padding = "SAME",
    dilation: int | Sequence[int] = 1,
    impl: str = "xla",
) -> jax.Array:
  """NHWC x HWIO grouped convolution.

  Args:
    x: input, shape (N, H, W, C_in).
    kernel: shape (kh, kw, C_in // feature_group_count, C_out).
    feature_group_count: number of groups G; C_in and C_out must divide by G.
    strides: int or (sh, sw).
    padding: 'SAME', 'VALID', an int, or ((top, bottom), (left, right)).
    dilation: kernel (rhs) dilation, int or (dh, dw).
    impl: 'xla' (native ``lax.conv_general_dilated``).

  Returns:
    (N, H_out, W_out, C_out), dtype of ``x``.
  """
  if impl not in IMPLS:
    raise ValueError(f"impl (={impl!r}) must be one of {IMPLS}")
  strides = _pair(strides, "strides")
  dilation = _pair(dilation, "dilation")
  padding = normalize_padding(padding)
  return lax.conv_general_dilated(
      x, kernel, window_strides=strides, padding=padding, rhs_dilation=dilation,
      dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=feature_group_count)
