"""Flax NNX modules for the spectrum, with the parameter names and shapes of the Linen ones.

* ``sepconv.nnx.layers``: ``GroupedConv`` and ``SpectrumConv`` (the ``sepconv.layers``
  counterparts, on the same ``sepconv.conv`` functions).
* ``sepconv.nnx.net``: ``SpectrumNet`` and ``build_model``: MobileNet v1/v2 on any spectrum
  point, from the same architecture data as ``sepconv.models``.
* ``sepconv.nnx.checkpoint``: ``linen_to_nnx`` and ``nnx_to_linen`` move a checkpoint
  between the two, both ways.

Any plain ``flax.nnx.Conv`` runs on sepconv with one argument instead:
``nnx.Conv(..., conv_general_dilated=sepconv.conv_general_dilated)``.
"""

from sepconv.nnx.checkpoint import linen_to_nnx, nnx_to_linen
from sepconv.nnx.layers import GroupedConv, SpectrumConv
from sepconv.nnx.net import SpectrumNet, build_model

__all__ = ["GroupedConv", "SpectrumConv", "SpectrumNet", "build_model", "linen_to_nnx",
           "nnx_to_linen"]
