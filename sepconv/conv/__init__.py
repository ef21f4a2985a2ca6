"""Convolution implementations: pure functions of arrays, one entry point.

``grouped_conv`` has the semantics and parameter layout of
``lax.conv_general_dilated(..., dimension_numbers=("NHWC", "HWIO", "NHWC"),
feature_group_count=G)``; ``impl`` picks how it is computed, never what.
"""

from sepconv.conv.api import IMPLS, conv_spec, grouped_conv, plan_for
from sepconv.conv.hostmem import keep_freed_host_memory
from sepconv.conv.native import CPU_NO_YNN_OPTIONS
from sepconv.conv.registry import Plan
from sepconv.conv.separable import SEPARABLE_IMPLS, separable_conv
from sepconv.conv.spec import ConvSpec

__all__ = ["CPU_NO_YNN_OPTIONS", "ConvSpec", "IMPLS", "Plan", "SEPARABLE_IMPLS", "conv_spec",
           "grouped_conv", "keep_freed_host_memory", "plan_for", "separable_conv"]
