"""sepconv: the convolution spectrum from standard to depthwise-separable, in JAX/Flax.

* ``sepconv.spectrum``: the vocabulary (``ConvSpec``, named points, ``SpectrumPoint``,
  ``parse_point``).
* ``sepconv.cost``: the exact analytic cost model (plain integers, no JAX).
* ``sepconv.conv``: convolution implementations behind ``grouped_conv``;
  ``conv_general_dilated``, the drop-in any Flax ``Conv`` (Linen or NNX) takes.
* ``sepconv.layers``: Flax modules (``SpectrumConv``, ``GroupedConv``).
* ``sepconv.models``, ``sepconv.data``, ``sepconv.train``, ``sepconv.analysis``: MobileNets
  on any spectrum point, data sets, training, representational analyses.
* ``sepconv.bench``, ``sepconv.ablation``, ``sepconv.report``: benchmark records, the
  experiment job engine, and the tables and plots rendered from records.
"""

from sepconv.conv import conv_general_dilated, grouped_conv
from sepconv.spectrum import (
    ConvSpec, SpectrumPoint, bsconv, depthwise, depthwise_separable, grouped, grouped_separable,
    parse_point, shufflenet, standard)

__version__ = "0.1.0"

__all__ = [
    "ConvSpec", "SpectrumPoint", "bsconv", "conv_general_dilated", "depthwise",
    "depthwise_separable", "grouped", "grouped_conv", "grouped_separable", "parse_point", "shufflenet", "standard",
]
