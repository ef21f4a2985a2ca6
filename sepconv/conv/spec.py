"""The static description of one grouped convolution: shapes, groups and window geometry.

Every implementation receives a ``ConvSpec`` (hashable, so it can key jit and autotune
caches) instead of raw arguments. Padding is always resolved to explicit
((top, bottom), (left, right)) pairs with ``lax.padtype_to_pads``, exactly as
``lax.conv_general_dilated`` resolves 'SAME' and 'VALID'.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from jax import lax

Padding = str | int | Sequence[tuple[int, int]]
Pair = tuple[int, int]


def pair(value, name: str) -> Pair:
  """An int or a pair of positive ints as a pair."""
  if isinstance(value, (int, np.integer)):
    value = (int(value), int(value))
  try:
    value = tuple(int(v) for v in value)
  except TypeError:
    raise ValueError(
        f"{name} (={value!r}) must be a positive int or a pair of positive ints") from None
  if len(value) != 2 or min(value) < 1:
    raise ValueError(f"{name} (={value!r}) must be a positive int or a pair of positive ints")
  return value


def _explicit_pads(padding: Padding, in_hw: Pair, kernel_hw: Pair, strides: Pair,
                   dilation: Pair) -> tuple[Pair, Pair]:
  """'SAME'/'VALID', an int (symmetric) or ((top, bottom), (left, right)) as explicit pairs."""
  if isinstance(padding, str):
    if padding.upper() not in ("SAME", "VALID"):
      raise ValueError(
          f"padding (={padding!r}) must be 'SAME', 'VALID', an int or two (low, high) pairs")
    effective = tuple((k - 1) * d + 1 for k, d in zip(kernel_hw, dilation))
    pads = lax.padtype_to_pads(in_hw, effective, strides, padding.upper())
    return tuple((int(lo), int(hi)) for lo, hi in pads)
  if isinstance(padding, (int, np.integer)):
    return ((int(padding),) * 2, (int(padding),) * 2)
  try:
    pads = tuple(tuple(int(p) for p in lo_hi) for lo_hi in padding)
  except TypeError:
    raise ValueError(f"padding (={padding!r}) must be two (low, high) pairs for H and W") from None
  if len(pads) != 2 or any(len(p) != 2 for p in pads):
    raise ValueError(f"padding (={padding!r}) must be two (low, high) pairs for H and W")
  return pads


@dataclasses.dataclass(frozen=True)
class ConvSpec:
  """One NHWC x HWIO grouped convolution, every argument resolved.

  Attributes:
    in_shape: (N, H, W, C_in).
    kernel_shape: (kh, kw, C_in // groups, C_out).
    groups: feature_group_count G.
    strides: (sh, sw).
    pads: ((top, bottom), (left, right)), possibly negative (cropping).
    dilation: kernel dilation (dh, dw).
    dtype: element type name of input, kernel and output.
  """
  in_shape: tuple[int, int, int, int]
  kernel_shape: tuple[int, int, int, int]
  groups: int
  strides: Pair = (1, 1)
  pads: tuple[Pair, Pair] = ((0, 0), (0, 0))
  dilation: Pair = (1, 1)
  dtype: str = "float32"

  @property
  def batch(self) -> int:
    return self.in_shape[0]

  @property
  def in_hw(self) -> Pair:
    return self.in_shape[1:3]

  @property
  def kernel_hw(self) -> Pair:
    return self.kernel_shape[:2]

  @property
  def in_channels(self) -> int:
    return self.in_shape[3]

  @property
  def out_channels(self) -> int:
    return self.kernel_shape[3]

  @property
  def group_in(self) -> int:
    """Input channels per group (1 for depthwise)."""
    return self.kernel_shape[2]

  @property
  def group_out(self) -> int:
    """Output channels per group (the depth multiplier when depthwise)."""
    return self.out_channels // self.groups

  @property
  def out_hw(self) -> Pair:
    return tuple(
        (size + lo + hi - (k - 1) * d - 1) // s + 1
        for size, (lo, hi), k, d, s in zip(self.in_hw, self.pads, self.kernel_hw, self.dilation,
                                           self.strides))

  @property
  def out_shape(self) -> tuple[int, int, int, int]:
    return (self.batch, *self.out_hw, self.out_channels)

  @property
  def is_depthwise(self) -> bool:
    return self.group_in == 1

  @property
  def is_pointwise(self) -> bool:
    return self.kernel_hw == (1, 1)

  @property
  def macs(self) -> int:
    """Multiply-adds, counting taps on padding (the papers' convention)."""
    return int(np.prod(self.out_shape)) * self.group_in * self.kernel_hw[0] * self.kernel_hw[1]

  def key(self) -> str:
    """A stable text form for on-disk caches."""
    (pt, pb), (pl, pr) = self.pads
    return (f"x{'x'.join(map(str, self.in_shape))}_k{'x'.join(map(str, self.kernel_shape))}"
            f"_g{self.groups}_s{self.strides[0]}x{self.strides[1]}_p{pt},{pb},{pl},{pr}"
            f"_d{self.dilation[0]}x{self.dilation[1]}_{self.dtype}")


def make_spec(x_shape: Sequence[int], kernel_shape: Sequence[int], dtype, *,
              feature_group_count: int, strides, padding: Padding, dilation,
              kernel_dtype=None) -> ConvSpec:
  """Validates ``grouped_conv`` arguments and resolves them into a ``ConvSpec``."""
  x_shape, kernel_shape = tuple(int(s) for s in x_shape), tuple(int(s) for s in kernel_shape)
  if len(x_shape) != 4:
    raise ValueError(f"x shape (={x_shape}) must be 4-D NHWC (N, H, W, C_in)")
  if len(kernel_shape) != 4:
    raise ValueError(f"kernel shape (={kernel_shape}) must be 4-D HWIO (kh, kw, C_in/G, C_out)")
  groups = int(feature_group_count)
  if groups < 1:
    raise ValueError(f"feature_group_count (={feature_group_count}) must be a positive int")
  cin, cout = x_shape[3], kernel_shape[3]
  if cin % groups:
    raise ValueError(f"in_channels (={cin}) must be divisible by feature_group_count (={groups})")
  if cout % groups:
    raise ValueError(f"out_channels (={cout}) must be divisible by feature_group_count (={groups})")
  if kernel_shape[2] != cin // groups:
    raise ValueError(f"kernel input channels (={kernel_shape[2]}) must equal in_channels // "
                     f"feature_group_count (={cin} // {groups} = {cin // groups})")
  if min(kernel_shape[:2]) < 1 or min(x_shape) < 1:
    raise ValueError(f"shapes (x={x_shape}, kernel={kernel_shape}) must have no empty dimension")
  dtype = np.dtype(dtype)
  if kernel_dtype is not None and np.dtype(kernel_dtype) != dtype:
    raise ValueError(f"kernel dtype (={np.dtype(kernel_dtype).name}) must equal the input dtype "
                     f"(={dtype.name})")
  if not np.issubdtype(dtype, np.floating) and dtype.name != "bfloat16":
    raise ValueError(f"dtype (={dtype.name}) must be a floating type")
  strides, dilation = pair(strides, "strides"), pair(dilation, "dilation")
  pads = _explicit_pads(padding, x_shape[1:3], kernel_shape[:2], strides, dilation)
  spec = ConvSpec(x_shape, kernel_shape, groups, strides, pads, dilation, dtype.name)
  if min(spec.out_hw) < 1:
    raise ValueError(f"output size (={spec.out_hw}) must be positive: input {x_shape[1:3]}, "
                     f"kernel {kernel_shape[:2]}, dilation {dilation}, padding {pads}")
  return spec
