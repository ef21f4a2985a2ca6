"""The spectrum vocabulary, one name for each idea, used by every other package.

* ``layer``: ``ConvSpec``, one layer with its channel counts (a spatial stage and an
  optional pointwise stage, ``Stage``), and the named constructors of the famous points
  (``standard``, ``grouped``, ``depthwise``, ``depthwise_separable``,
  ``grouped_separable``, ``bsconv``, ``shufflenet``).
* ``points``: ``SpectrumPoint``, the same knob without channel counts, its kinds as one
  table (``POINT_KINDS``) and its strict string grammar (``parse_point``).
"""

from sepconv.spectrum.layer import (BETWEENS, ORDERS, Between, ConvSpec, Order, Stage, bsconv,
                                    depthwise, depthwise_separable, grouped, grouped_separable,
                                    mid_norm_name, named_points, shufflenet, stage_channels,
                                    standard)
from sepconv.spectrum.points import (ALIASES, FAMILIES, POINT_KINDS, PointKind, SpectrumPoint,
                                     grammar_help, parse_point)

__all__ = [
    "ALIASES", "BETWEENS", "Between", "ConvSpec", "FAMILIES", "ORDERS", "Order", "POINT_KINDS",
    "PointKind", "SpectrumPoint", "Stage", "bsconv", "depthwise", "depthwise_separable",
    "grammar_help", "grouped", "grouped_separable", "mid_norm_name", "named_points",
    "parse_point", "shufflenet", "stage_channels", "standard",
]
