"""MobileNet v2 (Sandler et al. 2018, arXiv:1801.04381) as data, on any point of the spectrum.

Reproduces the paper's headline cost (Table 4: 3.4M parameters, 300M mult-adds) and the
reference implementation's width x resolution table (see ``sepconv/experiments/mobilenet_paper.py``).

The body is Table 2 (arXiv:1801.04381v4, p. 5): a 3x3 stem conv with stride 2 to 32
channels, 17 inverted-residual blocks in 7 rows (expansion t, channels c, repeats n,
first stride s), a 1x1 conv to 1280 channels, global average pooling and a classifier.
Every conv is followed by BN; the activation is ReLU6, except after each block's last
layer (the linear bottleneck). A block adds its input when stride is 1 and channels match.

The spectrum knob inside an inverted residual. A block is ``1x1 expansion C -> tC, BN,
ReLU6`` (skipped when t = 1), then the knob's layer from the expanded ``tC`` channels to
the block output, ending in BN with no activation. The paper's layer is the
depthwise-separable pair (depthwise 3x3, BN, ReLU6, projection 1x1), so the knob treats
that pair exactly as MobileNet v1 treats its blocks:

* ``dws`` (default, the paper): depthwise 3x3 + BN + ReLU6 + 1x1 projection.
  ``dws:g=G``: each 3x3 filter sees G of the expanded channels (ResNeXt-like grouped 3x3,
  projection kept); ``dws:m=M``: the 3x3 stage makes M * tC maps for the projection;
  ``dws:pg=P[,shuffle=1]``: grouped projection (and shuffle).
* ``standard``: one dense 3x3 conv tC -> C_out (the projection folded into it).
  A dense 3x3 tC -> tC that keeps the projection is ``dws:g=<any size >= tC>``.
* ``grouped:g=G``: one grouped 3x3 conv tC -> C_out, no projection.
* ``bsconv``: 1x1 tC -> C_out first, then depthwise 3x3 on C_out.
* ``shufflenet:pg=P``: grouped 1x1 tC -> C_out + shuffle, then depthwise 3x3.

A grouped layer from tC to C_out needs its group count tC / G to divide C_out. The blocks
narrow (tC = 6C), and with Table 2's channels no size below the widest expansion (960 at
width 1, 240 at width 0.25) fits every block, so ``grouped:g=G``, ``dws:pg=P`` and
``shufflenet:pg=P`` raise (naming the block and the sizes that would fit there) unless
capped to dense; ``dws:g=G`` is the grouped 3x3 that works at any G dividing the widths.

Group sizes at or above a stage's channels mean dense (``arch.fit_point``).

Channel rounding is the reference implementation's ``_make_divisible(c * alpha, 8)``
(TF-slim ``mobilenet.py``, Keras ``mobilenet_v2.py``); the last conv keeps 1280 channels
for alpha < 1 and grows with alpha > 1.

Small inputs (``small_input=True``, default for inputs of 32 pixels or less): the stem
and block 2 (the first 24-channel block) run at stride 1, total stride 8: a 32x32 image
ends at 4x4, an 8x8 image at 1x1 (the 64- and 96-channel stages at 2x2).
"""

from __future__ import annotations

import dataclasses

from sepconv.models.arch import (Architecture, ConvUnit, InvertedResidual, check_width_multiplier,
                                 fit_point)
from sepconv.spectrum import SpectrumPoint, parse_point, standard


@dataclasses.dataclass(frozen=True)
class BottleneckRow:
  """One row of Table 2: ``repeats`` blocks of expansion ``t`` to ``channels``, first at ``stride``."""
  expansion: int
  channels: int
  repeats: int
  stride: int


# Table 2 (arXiv:1801.04381v4, p. 5), channels at width multiplier 1.
STEM_CHANNELS = 32
BOTTLENECKS = (
    BottleneckRow(1, 16, 1, 1),
    BottleneckRow(6, 24, 2, 2),
    BottleneckRow(6, 32, 3, 2),
    BottleneckRow(6, 64, 4, 2),
    BottleneckRow(6, 96, 3, 1),
    BottleneckRow(6, 160, 3, 2),
    BottleneckRow(6, 320, 1, 1),
)
HEAD_CHANNELS = 1280
SMALL_INPUT_STRIDE_ONE = frozenset({"stem", "block2"})


def make_divisible(value: float, divisor: int = 8) -> int:
  """The reference implementation's rounding: nearest multiple of ``divisor``, >= divisor,
  and never more than 10% below ``value``."""
  rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
  if rounded < 0.9 * value:
    rounded += divisor
  return rounded


def architecture(*, num_classes: int, conv: str | SpectrumPoint = "dws", width_multiplier: float = 1.0,
                 small_input: bool = False) -> Architecture:
  """MobileNet v2 as units.

  Args:
    num_classes: classifier outputs.
    conv: the spectrum point of every block's 3x3 layer (see the module docstring).
    width_multiplier: alpha; channels are ``make_divisible(c * alpha, 8)``.
    small_input: stem and block 2 at stride 1 (for 8x8 to 32x32 inputs).
  """
  point = parse_point(conv)
  alpha = check_width_multiplier(width_multiplier)

  def stride(name: str, s: int) -> int:
    return 1 if small_input and name in SMALL_INPUT_STRIDE_ONE else s

  channels = make_divisible(STEM_CHANNELS * alpha)
  units = [ConvUnit("stem", standard(3, channels, 3, stride=stride("stem", 2)), "relu6")]
  index = 0
  for row in BOTTLENECKS:
    out = make_divisible(row.channels * alpha)
    for repeat in range(row.repeats):
      index += 1
      name = f"block{index}"
      s = stride(name, row.stride if repeat == 0 else 1)
      hidden = channels * row.expansion
      expand = standard(channels, hidden, 1) if row.expansion != 1 else None
      spec = fit_point(point, hidden, out, 3, stride=s, default_between="norm_act", where=name)
      units.append(InvertedResidual(name, expand, spec, residual=s == 1 and channels == out))
      channels = out
  head = make_divisible(HEAD_CHANNELS * max(1.0, alpha))
  units.append(ConvUnit("head", standard(channels, head, 1), "relu6"))
  return Architecture("mobilenet_v2", tuple(units), num_classes)
