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
* The separable block (grouped spatial conv, then a dense 1x1 pointwise conv) is counted
  fused: its intermediate never reaches memory, which is the best a kernel can do.
"""

from __future__ import annotations

import dataclasses

from sepconv import cost, spectrum

DTYPES = ("float32", "bfloat16")
DTYPE_BYTES = {"float32": 4, "bfloat16": 2}
LAYERS = ("conv", "separable")
MODES = ("fwd", "fwdbwd")


def _positive(name: str, value) -> None:
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise ValueError(f"{name} (={value!r}) must be a positive integer")


def output_size(size: int, kernel: int, stride: int, dilation: int,
                padding: str | int) -> tuple[int, int, int]:
  """(output size, low pad, high pad) along one axis, as XLA pads SAME/VALID/int."""
  span = (kernel - 1) * dilation + 1
  if padding == "SAME":
    out = -(-size // stride)
    total = max((out - 1) * stride + span - size, 0)
    return out, total // 2, total - total // 2
  lo = 0 if padding == "VALID" else padding
  out = (size + 2 * lo - span) // stride + 1
  return out, lo, lo


@dataclasses.dataclass(frozen=True)
class LayerConfig:
  """A conv layer (or separable block) to time; defaults are the reference layer.

  ``group_size`` is channels per group (timm's convention): 1 is depthwise,
  ``in_channels`` is a dense conv; the group count is ``in_channels // group_size``.
  For ``layer='separable'`` it applies to the spatial stage (which keeps
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
      _positive(name, getattr(self, name))
    if self.dtype not in DTYPES:
      raise ValueError(f"dtype (={self.dtype!r}) must be one of {DTYPES}")
    if self.layer not in LAYERS:
      raise ValueError(f"layer (={self.layer!r}) must be one of {LAYERS}")
    if isinstance(self.padding, str):
      if self.padding not in ("SAME", "VALID"):
        raise ValueError(f"padding (={self.padding!r}) must be 'SAME', 'VALID' or an int >= 0")
    elif isinstance(self.padding, bool) or not isinstance(self.padding, int) or self.padding < 0:
      raise ValueError(f"padding (={self.padding!r}) must be 'SAME', 'VALID' or an int >= 0")
    if self.in_channels % self.group_size:
      raise ValueError(f"in_channels (={self.in_channels}) must be divisible by group_size "
                       f"(={self.group_size})")
    if self.layer == "conv" and self.out_channels % self.groups:
      raise ValueError(f"out_channels (={self.out_channels}) must be divisible by the group count "
                       f"in_channels // group_size (={self.groups})")
    for axis in ("height", "width"):
      if output_size(getattr(self, axis), self.kernel, self.stride, self.dilation,
                     self.padding)[0] < 1:
        raise ValueError(f"{axis} (={getattr(self, axis)}) is too small for kernel {self.kernel}, "
                         f"dilation {self.dilation} and padding {self.padding!r}")

  @property
  def groups(self) -> int:
    return self.in_channels // self.group_size

  @property
  def out_hw(self) -> tuple[int, int]:
    args = (self.kernel, self.stride, self.dilation, self.padding)
    return output_size(self.height, *args)[0], output_size(self.width, *args)[0]

  def kernel_shapes(self) -> tuple[tuple[int, ...], ...]:
    """HWIO shapes: (kernel,) for a conv, (spatial, pointwise) for a separable block."""
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
                           pointwise=c.layer == "separable")
  layers = cost.spec_cost(spec, (c.height, c.width), dtype_bytes=DTYPE_BYTES[c.dtype])
  summary = cost.summarize(layers)
  x = c.batch * _prod(layers[0].in_shape)
  y = c.batch * _prod(layers[-1].out_shape)
  w = summary.params
  flops, flops_valid, elements = c.batch * summary.flops, c.batch * summary.xla_flops, x + y + w
  if mode == "fwdbwd":
    flops, flops_valid, elements = 3 * flops, 3 * flops_valid, 3 * x + 2 * y + 3 * w
  return {"flops": flops, "flops_valid_taps": flops_valid,
          "bytes_min": elements * DTYPE_BYTES[c.dtype],
          "counts_source": "sepconv.cost (padded taps counted); fwdbwd = 3x FLOPs, 3x+2y+3w bytes"}


def _prod(shape) -> int:
  out = 1
  for s in shape:
    out *= s
  return out
