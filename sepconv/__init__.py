"""sepconv: the convolution spectrum from standard to depthwise-separable, in JAX/Flax.

* ``sepconv.spectrum``: the vocabulary (``ConvSpec``, named points, ``parse_point``).
* ``sepconv.cost``: the exact analytic cost model (plain integers, no JAX).
* ``sepconv.conv``: convolution implementations behind ``grouped_conv``.
* ``sepconv.layers``: Flax modules (``SpectrumConv``, ``GroupedConv``).
"""

from sepconv.conv import grouped_conv
from sepconv.spectrum import (
    ConvSpec, SpectrumPoint, bsconv, depthwise, depthwise_separable, grouped, grouped_separable,
    parse_point, shufflenet, standard)

__version__ = "0.1.0"

__all__ = [
    "ConvSpec", "SpectrumPoint", "bsconv", "depthwise", "depthwise_separable", "grouped",
    "grouped_conv", "grouped_separable", "parse_point", "shufflenet", "standard",
]
