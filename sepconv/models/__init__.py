"""Models built from the spectrum: MobileNet v1 and v2, any block on any spectrum point.

* ``build_model(name, ...)``: the Flax module (``SpectrumNet``).
* ``model_architecture(name, ...)``: the same model as frozen data (``Architecture``).
* ``model_cost(name, ...)`` / ``model_summary(name, ...)``: its exact per-layer costs and
  totals from ``sepconv.cost``, with layer names equal to the Flax parameter paths
  (no JAX involved).

Variant names are decoded through ``MODELS``, which cites each source.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp

from sepconv import conv as conv_ops
from sepconv import cost, validate
from sepconv.models import mobilenet_v1, mobilenet_v2
from sepconv.models.arch import (Architecture, ConvUnit, InvertedResidual, architecture_cost,
                                 check_input_size, fit_point)
from sepconv.models.net import SpectrumNet
from sepconv.spectrum import SpectrumPoint, parse_point


@dataclasses.dataclass(frozen=True)
class Variant:
  """A model name's builder and the paper (and table) it follows."""
  build: Callable[..., Architecture]
  source: str


MODELS: dict[str, Variant] = {
    "mobilenet_v1": Variant(mobilenet_v1.architecture,
                            "Howard et al. 2017, arXiv:1704.04861, Table 1"),
    "mobilenet_v1_shallow": Variant(functools.partial(mobilenet_v1.architecture, shallow=True),
                                    "Howard et al. 2017, arXiv:1704.04861, Table 5"),
    "mobilenet_v2": Variant(mobilenet_v2.architecture,
                            "Sandler et al. 2018, arXiv:1801.04381, Table 2"),
}


def _variant(name: str) -> Variant:
  if name not in MODELS:
    raise ValueError(f"model name (={name!r}) must be one of {tuple(MODELS)}")
  return MODELS[name]


def model_architecture(name: str, *, num_classes: int = 1000, conv: str | SpectrumPoint = "dws",
                       width_multiplier: float = 1.0, input_size: int = 224,
                       small_input: bool | None = None, in_channels: int = 3) -> Architecture:
  """The model as data; arguments as in ``build_model``; ``in_channels`` of the images."""
  variant = _variant(name)
  validate.positive_int(in_channels, "in_channels")
  point = parse_point(conv)
  if point.kind.models is not None and name not in point.kind.models:
    raise ValueError(f"model name (={name!r}) must be one of {point.kind.models}, the models "
                     f"spectrum point '{point}' is registered for")
  arch = variant.build(num_classes=num_classes, conv=conv, width_multiplier=width_multiplier,
                       small_input=resolve_small_input(input_size, small_input))
  return arch.with_in_channels(in_channels)


def resolve_small_input(input_size: int, small_input: bool | None = None) -> bool:
  """``small_input`` itself, or by default whether ``input_size <= 32``."""
  check_input_size(input_size)
  if small_input is None:
    return input_size <= 32
  return validate.boolean(small_input, "small_input")


def build_model(name: str, *, num_classes: int, conv: str | SpectrumPoint = "dws",
                width_multiplier: float = 1.0, input_size: int = 224, impl: str = "auto",
                dtype: Any = jnp.float32, small_input: bool | None = None,
                dropout_rate: float = 0.0) -> SpectrumNet:
  """A Flax classifier: ``model.apply(variables, x, train=...)`` gives ``(logits, features)``.

  Args:
    name: one of ``MODELS`` ('mobilenet_v1', 'mobilenet_v1_shallow', 'mobilenet_v2').
    num_classes: classifier outputs.
    conv: spectrum point of every block (``sepconv.spectrum.parse_point`` grammar), e.g.
      'dws' (the papers), 'standard', 'grouped:g=8', 'dws:g=4', 'dws:m=2', 'bsconv',
      'shufflenet:pg=8'. Group sizes at or above a stage's channels mean dense.
    width_multiplier: alpha (MobileNet v1: ``int(c * alpha)``; v2: ``make_divisible``).
    input_size: square input side; sets the default of ``small_input``.
    impl: convolution implementation for every conv (``sepconv.conv.IMPLS``).
    dtype: computation dtype (parameters stay float32; logits are float32).
    small_input: fewer stride-2 layers for 8x8 to 32x32 inputs (total stride 8);
      default ``input_size <= 32``. See the model modules for which layers.
    dropout_rate: dropout before the classifier (active when ``train=True``).

  Raises:
    ValueError: unknown name or implementation, or a spectrum point that does not fit.
  """
  if impl not in conv_ops.IMPLS:
    raise ValueError(f"impl (={impl!r}) must be one of {conv_ops.IMPLS}")
  if isinstance(dropout_rate, bool) or not isinstance(dropout_rate, (int, float)) or not (
      0 <= dropout_rate < 1):
    raise ValueError(f"dropout_rate (={dropout_rate!r}) must be in [0, 1)")
  arch = model_architecture(name, num_classes=num_classes, conv=conv,
                            width_multiplier=width_multiplier, input_size=input_size,
                            small_input=small_input)
  return SpectrumNet(arch, input_size=input_size, impl=impl, dtype=dtype,
                     dropout_rate=float(dropout_rate))


def model_cost(name: str, *, num_classes: int = 1000, conv: str | SpectrumPoint = "dws",
               width_multiplier: float = 1.0, input_size: int = 224, small_input: bool | None = None,
               in_channels: int = 3, dtype_bytes: int = 4) -> list[cost.LayerCost]:
  """Per-layer costs (``sepconv.cost.LayerCost``), named as the Flax parameters.

  Arguments as in ``build_model``; ``in_channels`` is the images' channel count (the
  network itself adapts its stem to whatever it is given).
  """
  arch = model_architecture(name, num_classes=num_classes, conv=conv,
                            width_multiplier=width_multiplier, input_size=input_size,
                            small_input=small_input, in_channels=in_channels)
  return architecture_cost(arch, input_size, dtype_bytes=dtype_bytes)


def model_summary(name: str, **kwargs) -> cost.CostSummary:
  """Totals of ``model_cost(name, **kwargs)``: params (paper count), mult-adds, ..."""
  return cost.summarize(model_cost(name, **kwargs))


__all__ = [
    "Architecture", "ConvUnit", "InvertedResidual", "MODELS", "SpectrumNet", "Variant",
    "architecture_cost", "build_model", "fit_point", "model_architecture", "model_cost",
    "model_summary", "resolve_small_input",
]
