"""Convolution implementations: pure functions of arrays, one entry point.

``grouped_conv`` has the semantics and parameter layout of
``lax.conv_general_dilated(..., dimension_numbers=("NHWC", "HWIO", "NHWC"),
feature_group_count=G)``; ``impl`` picks how it is computed, never what.
"""

from sepconv.conv.api import grouped_conv, IMPLS

__all__ = ["grouped_conv", "IMPLS"]
