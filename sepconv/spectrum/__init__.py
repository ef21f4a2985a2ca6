"""The spectrum vocabulary, one name for each idea, used by every other package.

* ``layer``: ``ConvSpec``, one layer with its channel counts (a spatial stage and an
  optional pointwise stage, ``Stage``), and the named constructors of the famous points
  (``standard``, ``grouped``, ``depthwise``, ``depthwise_separable``,
  ``grouped_separable``, ``bsconv``, ``shufflenet``); ``ConvSpec.ops`` is the layer as a
  program of named stages, norms, shuffle and activation, the one definition every Flax
  API runs.
* ``points``: ``SpectrumPoint``, the same knob without channel counts; the registry of
  its kinds (``POINT_KINDS``, ``register_point``) that the grammar (``parse_point``),
  models, plots (``legend_of``) and the worked example (``WORKED_EXAMPLE``) read.
"""

from sepconv.spectrum.layer import (ACT, BETWEENS, ORDERS, Act, Between, ConvSpec, Norm, Op, Order,
                                    Shuffle, Stage, bsconv, depthwise, depthwise_separable, grouped,
                                    grouped_separable, mid_norm_name, named_points, shufflenet,
                                    stage_channels, standard)
from sepconv.spectrum.points import (ALIASES, ANCHOR, FAMILIES, POINT_KINDS, WORKED_EXAMPLE, Example,
                                     PointKind, SpectrumPoint, grammar_help, legend_of, parse_point,
                                     register_point, unregister_point)

__all__ = [
    "ACT", "Act", "ALIASES", "ANCHOR", "Between", "BETWEENS", "bsconv", "ConvSpec", "depthwise",
    "depthwise_separable", "Example", "FAMILIES", "grammar_help", "grouped", "grouped_separable",
    "legend_of", "mid_norm_name", "named_points", "Norm", "Op", "Order", "ORDERS", "parse_point",
    "POINT_KINDS", "PointKind", "register_point", "Shuffle", "shufflenet", "SpectrumPoint",
    "Stage", "stage_channels", "standard", "unregister_point", "WORKED_EXAMPLE",
]
