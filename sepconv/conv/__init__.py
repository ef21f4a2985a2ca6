"""Convolution implementations: pure functions of arrays, one entry point.

``grouped_conv`` has the semantics and parameter layout of
``lax.conv_general_dilated(..., dimension_numbers=("NHWC", "HWIO", "NHWC"),
feature_group_count=G)``; ``impl`` picks how it is computed, never what.

Layers, each importing only those above it:

* ``geometry``: ``ConvGeometry``, one call with every argument resolved; ``layout``:
  grouped kernels and their block-diagonal dense form.
* implementations: ``native`` (XLA's own convolution, with and without the CPU YNNPACK
  fusion, block-diagonal and channel-block forms), ``shift`` (shifted multiply-adds),
  ``pointwise`` (1x1 as a matmul), ``im2col`` (chunked matrix products); each says
  which geometries it supports.
* ``table``: the implementation table (``IMPL_TABLE``), their gradients and the platforms
  each can be lowered for (``cannot_lower``).
* ``choice``: the pure choice, (geometry, computation, platform) -> implementation, when
  nothing is measured; ``tune_cache``: measured choices in memory and on disk, keyed by
  platform, device kind and versions; ``measure``: timing candidates, and the budget.
* ``policy``: the ``Tuner`` behind ``impl='auto'`` (replayed plans, cache, measuring, heuristic).
* ``plan``: ``Plan`` (an implementation per forward, input gradient and kernel gradient)
  and its executors (a ``jax.custom_vjp`` where implementations mix; a
  ``lax.platform_dependent`` over each platform's plan).
* ``platform_guard``: an implementation asked for by name refuses, at lowering, a platform
  it does not claim.
* ``api``: ``grouped_conv``, ``plan_for``, ``platform_plans``, ``conv_geometry``.
* ``dropin``: ``conv_general_dilated``, ``lax.conv_general_dilated``'s signature on top of
  ``grouped_conv`` (the one argument any Flax ``Conv`` takes).
"""

from sepconv.conv.api import IMPLS, conv_geometry, grouped_conv, plan_for, platform_plans
from sepconv.conv.dropin import conv_general_dilated
from sepconv.conv.geometry import ConvGeometry
from sepconv.conv.native import CPU_NO_YNN_OPTIONS
from sepconv.conv.plan import Plan

__all__ = ["CPU_NO_YNN_OPTIONS", "ConvGeometry", "IMPLS", "Plan", "conv_general_dilated",
           "conv_geometry", "grouped_conv", "plan_for", "platform_plans"]
