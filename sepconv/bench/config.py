"""One benchmarked layer: its configuration and its analytic FLOP and byte counts.

Counting conventions (one function, ``counts``, holds them all):

* FLOPs = 2 x mult-adds from the cost model ``sepconv.cost``: every kernel tap counted,
  including those on zero padding (the papers' convention); ``flops_valid_taps`` skips
  them, as XLA's ``cost_analysis`` does (its own figure is recorded as ``xla_flops``).
  A grouped conv does ``2 N Ho Wo C_out k^2 C_in / G``.
* Minimum bytes, forward = input + output + weights at the dtype's size.
* Forward + backward = 3 x the forward FLOPs (output, input gradient, weight gradient)
  and at least 3 input-sized + 2 output-sized tensors (forward reads x and writes y; the
  backward reads the cotangent and x and writes dx), plus weights read twice and the
  weight gradient written once. With C_in = C_out at stride 1 that is the five
  activation-sized tensors a training step moves per conv.
* The spatial + pointwise block (grouped spatial conv, then a dense 1x1 pointwise conv) is counted
  fused: its intermediate never reaches memory, which is the best a kernel can do.
"""

from __future__ import annotations

import dataclasses

from sepconv import cost, spectrum, validate, window

DTYPES = ("float32", "bfloat16")
LAYERS = ("conv", "spatial_pointwise")
MODES = ("fwd", "fwdbwd")


def axis_padding(padding: str | int) -> str | tuple[int, int]:
  """A config's padding ('SAME', 'VALID' or an int on both sides) for one axis."""
  return padding if isinstance(padding, str) else (padding, padding)


@dataclasses.dataclass(frozen=True)
class LayerConfig:
  """A conv layer (or spatial + pointwise block) to time; defaults are the reference layer.

  ``group_size`` is channels per group (timm's convention): 1 is depthwise,
  ``in_channels`` is a dense conv; the group count is ``in_channels // group_size``.
  For ``layer='spatial_pointwise'`` it applies to the spatial stage (which keeps
  ``in_channels`` channels) and a dense 1x1 conv maps to ``out_channels``.
  """
  batch: int = 32
  height: int = 56
  width: int = 56
  in_channels: int = 128
  out_channels: int = 128
  kernel: int = 3
  stride: int = 1
  dilation: int = 1
  padding: str | int = "SAME"
  group_size: int = 1
  dtype: str = "float32"
  layer: str = "conv"

  def __post_init__(self):
    for name in ("batch", "height", "width", "in_channels", "out_channels", "kernel", "stride",
                 "dilation", "group_size"):
      validate.positive_int(getattr(self, name), name)
    validate.one_of(self.dtype, "dtype", DTYPES)
    validate.one_of(self.layer, "layer", LAYERS)
    if isinstance(self.padding, str):
      validate.one_of(self.padding, "padding", ("SAME", "VALID"))
    else:
      validate.nonnegative_int(self.padding, "padding")
    if self.in_channels % self.group_size:
      raise ValueError(f"in_channels (={self.in_channels}) must be divisible by group_size "
                       f"(={self.group_size})")
    if self.layer == "conv" and self.out_channels % self.groups:
      raise ValueError(f"out_channels (={self.out_channels}) must be divisible by the group count "
                       f"in_channels // group_size (={self.groups})")
    for axis in ("height", "width"):
      try:
        self.axis_window(getattr(self, axis))
      except ValueError:
        raise ValueError(f"{axis} (={getattr(self, axis)}) is too small for kernel {self.kernel}, "
                         f"dilation {self.dilation} and padding {self.padding!r}") from None

  @property
  def groups(self) -> int:
    return self.in_channels // self.group_size

  def axis_window(self, size: int) -> tuple[int, int, int]:
    """(output size, low pad, high pad) of an axis of ``size`` (``sepconv.window``)."""
    return window.output_size(size, self.kernel, self.stride, self.dilation,
                              axis_padding(self.padding))

  @property
  def out_hw(self) -> tuple[int, int]:
    return self.axis_window(self.height)[0], self.axis_window(self.width)[0]

  def kernel_shapes(self) -> tuple[tuple[int, ...], ...]:
    """HWIO shapes: (kernel,) for a conv, (spatial, pointwise) for a spatial + pointwise block."""
    k = self.kernel
    if self.layer == "conv":
      return ((k, k, self.group_size, self.out_channels),)
    return ((k, k, self.group_size, self.in_channels), (1, 1, self.in_channels, self.out_channels))

  def to_dict(self) -> dict:
    return {**dataclasses.asdict(self), "groups": self.groups}


def counts(config: LayerConfig, mode: str) -> dict:
  """Analytic FLOPs and minimum bytes of one call (conventions in the module docstring).

  Per-example counts come from the cost model (``sepconv.cost``); this function scales
  them by the batch and applies the forward + backward convention.
  """
  if mode not in MODES:
    raise ValueError(f"mode (={mode!r}) must be one of {MODES}")
  c = config
  spec = spectrum.ConvSpec(c.in_channels, c.out_channels, c.kernel, stride=c.stride,
                           dilation=c.dilation, padding=c.padding, group_size=c.group_size,
                           pointwise=c.layer == "spatial_pointwise")
  layers = cost.spec_cost(spec, (c.height, c.width), dtype_bytes=cost.DTYPE_BYTES[c.dtype])
  summary = cost.summarize(layers)
  x = c.batch * cost.prod(layers[0].in_shape)
  y = c.batch * cost.prod(layers[-1].out_shape)
  w = summary.params
  flops, flops_valid, elements = c.batch * summary.flops, c.batch * summary.xla_flops, x + y + w
  if mode == "fwdbwd":
    flops, flops_valid, elements = 3 * flops, 3 * flops_valid, 3 * x + 2 * y + 3 * w
  return {"flops": flops, "flops_valid_taps": flops_valid,
          "bytes_min": elements * cost.DTYPE_BYTES[c.dtype],
          "counts_source": "sepconv.cost (padded taps counted); fwdbwd = 3x FLOPs, 3x+2y+3w bytes"}
