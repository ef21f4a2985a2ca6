"""One grouped convolution call, every argument resolved: ``ConvGeometry``.

Every implementation receives a ``ConvGeometry`` (hashable, so it can key jit and
autotune caches) instead of raw arguments. It describes one call (batch, shapes, groups,
window), not a layer of the spectrum (that is ``sepconv.spectrum.ConvSpec``). Padding is
always resolved to explicit ((top, bottom), (left, right)) pairs by ``sepconv.window``,
exactly as ``lax.conv_general_dilated`` resolves 'SAME' and 'VALID'.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from sepconv import validate, window

Padding = str | int | Sequence[tuple[int, int]]
Pair = tuple[int, int]


@dataclasses.dataclass(frozen=True)
class ConvGeometry:
  """One NHWC x HWIO grouped convolution call, every argument resolved.

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
    return tuple(window.axis_output(size, k, s, d, lo, hi)
                 for size, (lo, hi), k, d, s in zip(self.in_hw, self.pads, self.kernel_hw,
                                                    self.dilation, self.strides))

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


def explicit_pads(padding: Padding, in_hw: Pair, kernel_hw: Pair, strides: Pair,
                  dilation: Pair) -> tuple[Pair, Pair]:
  """'SAME'/'VALID', an int (symmetric) or ((top, bottom), (left, right)) as explicit pairs."""
  resolved = validate.padding(padding, allow_negative=True)
  if isinstance(resolved, str):
    return tuple(window.axis_pads(size, k, s, d, resolved)
                 for size, k, s, d in zip(in_hw, kernel_hw, strides, dilation))
  return resolved


def make_geometry(x_shape: Sequence[int], kernel_shape: Sequence[int], dtype, *,
                  feature_group_count: int, strides, padding: Padding, dilation,
                  kernel_dtype=None) -> ConvGeometry:
  """Validates ``grouped_conv`` arguments and resolves them into a ``ConvGeometry``."""
  x_shape, kernel_shape = tuple(int(s) for s in x_shape), tuple(int(s) for s in kernel_shape)
  if len(x_shape) != 4:
    raise ValueError(f"x shape (={x_shape}) must be 4-D NHWC (N, H, W, C_in)")
  if len(kernel_shape) != 4:
    raise ValueError(f"kernel shape (={kernel_shape}) must be 4-D HWIO (kh, kw, C_in/G, C_out)")
  groups = validate.positive_int(feature_group_count, "feature_group_count")
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
  # Resolved to pairs first, so a bad int reads as the pair it means: strides (=(0, 0)).
  strides = validate.pair((strides,) * 2 if validate.is_int(strides) else strides, "strides")
  dilation = validate.pair((dilation,) * 2 if validate.is_int(dilation) else dilation, "dilation")
  pads = explicit_pads(padding, x_shape[1:3], kernel_shape[:2], strides, dilation)
  geom = ConvGeometry(x_shape, kernel_shape, groups, strides, pads, dilation, dtype.name)
  if min(geom.out_hw) < 1:
    raise ValueError(f"output size (={geom.out_hw}) must be positive: input {x_shape[1:3]}, "
                     f"kernel {kernel_shape[:2]}, dilation {dilation}, padding {pads}")
  return geom
