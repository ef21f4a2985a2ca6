"""MobileNet v1 (Howard et al. 2017, arXiv:1704.04861) as data, on any point of the spectrum.

Reproduces the paper's cost tables (see ``sepconv/experiments/mobilenet_paper.py``): Table 4
(depthwise-separable vs standard-conv MobileNet), Table 5 (shallow), Table 6 (width
multiplier) and Table 7 (resolution multiplier).

The body is Table 1 (arXiv v1, p. 4): a 3x3 stem conv with stride 2, then 13 blocks,
each a depthwise 3x3 + BN + ReLU + pointwise 1x1 + BN + ReLU, then global average pooling
and a fully connected classifier. Table 1 prints the last depthwise layer as stride 2;
its output stays 7x7, so it is stride 1 (as in every reference implementation).

The spectrum knob ``conv`` (a ``SpectrumPoint`` or its string) sets every block's layer
``C_in -> C_out`` (the stem stays a standard conv, as in the paper):

* ``dws`` (default, the paper): depthwise 3x3 then pointwise 1x1, BN + ReLU between;
  ``dws:g=G`` makes each spatial filter see G channels, ``dws:m=M`` is the depth
  multiplier (the spatial stage makes M * C_in maps).
* ``standard``: one dense 3x3 conv per block (the paper's "Conv MobileNet", Table 4).
* ``grouped:g=G``: one grouped 3x3 conv per block, no pointwise stage.
* ``bsconv``: pointwise first, then depthwise (BSConv-U).
* ``shufflenet:pg=P``: grouped pointwise (P channels per group) + channel shuffle, then
  depthwise.

Group sizes at or above a stage's channels mean dense (``arch.fit_point``); sizes that do
not divide raise ``ValueError``.

Width multiplier alpha: every channel count is ``int(c * alpha)`` (paper Sec. 3.3, Keras
``int(filters * alpha)``), which reproduces Table 6 exactly.

Small inputs (``small_input=True``, the default for inputs of 32 pixels or less): the
stem and block 2 run at stride 1 instead of 2, so the total stride is 8 instead of 32:
a 32x32 CIFAR image ends at 4x4 (the 512-channel stage at 8x8) and an 8x8 digit at 1x1
(the 512-channel stage at 2x2, so its 3x3 filters still see neighbours).
"""

from __future__ import annotations

import dataclasses

from sepconv.models.arch import (Architecture, ConvUnit, check_width_multiplier, fit_point)
from sepconv.spectrum import SpectrumPoint, parse_point, standard


@dataclasses.dataclass(frozen=True)
class Block:
  """One row pair of Table 1: a depthwise-separable layer to ``out_channels`` at ``stride``."""
  out_channels: int
  stride: int


# Table 1 (arXiv:1704.04861v1, p. 4), channels at width multiplier 1.
STEM_CHANNELS = 32
BLOCKS = (
    Block(64, 1),
    Block(128, 2), Block(128, 1),
    Block(256, 2), Block(256, 1),
    Block(512, 2), *(Block(512, 1),) * 5,
    Block(1024, 2), Block(1024, 1),  # Table 1 misprints the last depthwise stride as 2
)
# Table 5: "Shallow MobileNet" removes the five 14x14x512 depthwise-separable layers (blocks 7-11).
SHALLOW_DROPPED = frozenset(range(6, 11))
# Stride-2 layers that run at stride 1 for small inputs (8x8 to 32x32): total stride 8.
SMALL_INPUT_STRIDE_ONE = frozenset({"stem", "block2"})


def architecture(*, num_classes: int, conv: str | SpectrumPoint = "dws", width_multiplier: float = 1.0,
                 small_input: bool = False, shallow: bool = False) -> Architecture:
  """MobileNet v1 as units.

  Args:
    num_classes: classifier outputs.
    conv: the spectrum point of every block (see the module docstring).
    width_multiplier: alpha; channels are ``int(c * alpha)``.
    small_input: stem and block 2 at stride 1 (for 8x8 to 32x32 inputs).
    shallow: drop the five 14x14x512 blocks (Table 5's "Shallow MobileNet").
  """
  point = parse_point(conv)
  alpha = check_width_multiplier(width_multiplier)

  def width(c: int) -> int:
    if int(c * alpha) < 1:
      raise ValueError(f"width_multiplier (={alpha}) leaves no channels of {c}")
    return int(c * alpha)

  def stride(name: str, s: int) -> int:
    return 1 if small_input and name in SMALL_INPUT_STRIDE_ONE else s

  channels = width(STEM_CHANNELS)
  units = [ConvUnit("stem", standard(3, channels, 3, stride=stride("stem", 2)), "relu")]
  blocks = [b for i, b in enumerate(BLOCKS) if not (shallow and i in SHALLOW_DROPPED)]
  for i, block in enumerate(blocks, start=1):
    name, out = f"block{i}", width(block.out_channels)
    spec = fit_point(point, channels, out, 3, stride=stride(name, block.stride),
                     default_between="norm_act", where=name)
    units.append(ConvUnit(name, spec, "relu", "relu"))
    channels = out
  return Architecture("mobilenet_v1_shallow" if shallow else "mobilenet_v1", tuple(units), num_classes)
