"""Architectures as data: resolved unit tables, the spectrum knob's rule, and the cost walk.

A model is an ``Architecture``: a tuple of frozen units whose ``ConvSpec``s carry every
channel count, stride and group. The Flax networks (``sepconv.models.net`` and
``sepconv.nnx.net``) and the cost walk (``architecture_cost``) all read the same tuple
through ``unit_layers``, so the analytic costs and the parameter trees cannot drift apart. Nothing here imports JAX.

Layer names are the Flax parameter paths: a ``ConvUnit`` named "block3" gives
"block3/spatial", "block3/mid_norm", "block3/pointwise", "block3/norm"; an
``InvertedResidual`` nests "expand" and "conv" ("block3/expand/spatial",
"block3/conv/pointwise", ...); the classifier is "classifier".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

from sepconv import cost, validate
from sepconv.spectrum import Between, ConvSpec, SpectrumPoint, parse_point, stage_channels

Activation = Literal["relu", "relu6", "linear"]
ACTIVATIONS = ("relu", "relu6", "linear")


@dataclasses.dataclass(frozen=True)
class ConvUnit:
  """One spectrum layer, then BatchNorm ("norm"), then ``activation``.

  ``inner_activation`` is applied between a two-stage layer's stages where
  ``spec.between`` includes 'act' (MobileNet v1: BN + ReLU between depthwise and pointwise).
  """
  name: str
  spec: ConvSpec
  activation: Activation = "relu"
  inner_activation: Activation = "relu"


@dataclasses.dataclass(frozen=True)
class InvertedResidual:
  """MobileNet v2's bottleneck: 1x1 expansion, the knob's layer, linear output, shortcut.

  ``expand`` (None when the expansion factor is 1) is a 1x1 conv + BN + ``activation``;
  ``conv`` maps the expanded channels to the block output and ends with BN and no
  activation (the linear bottleneck); its inner stages use ``activation``. ``residual``
  adds the block input to the output.
  """
  name: str
  expand: ConvSpec | None
  conv: ConvSpec
  residual: bool
  activation: Activation = "relu6"


Unit = ConvUnit | InvertedResidual


@dataclasses.dataclass(frozen=True)
class Architecture:
  """A whole classifier: units in order, then global average pool, dropout, dense with bias."""
  name: str
  units: tuple[Unit, ...]
  num_classes: int
  in_channels: int = 3

  def __post_init__(self):
    if not self.units:
      raise ValueError(f"architecture {self.name!r} has no units")
    validate.positive_int(self.num_classes, "num_classes")
    names = [u.name for u in self.units]
    if len(set(names)) != len(names) or "classifier" in names:
      raise ValueError(f"unit names (={names}) must be unique and not 'classifier'")
    channels = self.in_channels
    for unit in self.units:
      for act in (unit.activation, getattr(unit, "inner_activation", "linear")):
        if act not in ACTIVATIONS:
          raise ValueError(f"{unit.name}: activation (={act!r}) must be one of {ACTIVATIONS}")
      first = unit.spec if isinstance(unit, ConvUnit) else (unit.expand or unit.conv)
      if first.in_channels != channels:
        raise ValueError(f"{unit.name}: input channels (={first.in_channels}) must equal the "
                         f"previous unit's output channels (={channels})")
      if isinstance(unit, InvertedResidual):
        if unit.expand is not None and unit.expand.out_channels != unit.conv.in_channels:
          raise ValueError(f"{unit.name}: expand output (={unit.expand.out_channels}) must equal "
                           f"conv input (={unit.conv.in_channels})")
        if unit.residual and (unit.conv.stride != (1, 1) or unit.conv.out_channels != channels):
          raise ValueError(f"{unit.name}: a residual needs stride 1 and equal in/out channels")
      channels = unit_out_channels(unit)

  @property
  def features(self) -> int:
    """Channels of the pooled penultimate features."""
    return unit_out_channels(self.units[-1])

  def with_in_channels(self, in_channels: int) -> Architecture:
    """The same model on images with ``in_channels`` channels (the dense stem adapts)."""
    if in_channels == self.in_channels:
      return self
    stem = self.units[0]
    if not isinstance(stem, ConvUnit) or stem.spec.groups != 1 or stem.spec.pointwise:
      raise ValueError(f"{self.name}: only a single dense stem conv adapts to in_channels (={in_channels})")
    stem = dataclasses.replace(stem, spec=dataclasses.replace(stem.spec, in_channels=in_channels,
                                                              group_size=None))
    return dataclasses.replace(self, units=(stem, *self.units[1:]), in_channels=in_channels)


def unit_out_channels(unit: Unit) -> int:
  return unit.spec.out_channels if isinstance(unit, ConvUnit) else unit.conv.out_channels


def _cap(size: int | None, channels: int) -> int | None:
  return None if size is None else min(size, channels)


def fit_point(point: str | SpectrumPoint, in_channels: int, out_channels: int, kernel_size: int = 3,
              *, stride: int = 1, default_between: Between = "none", where: str = "") -> ConvSpec:
  """The layer a spectrum point makes for one block, with the group-size cap rule.

  Rule: a group size at or above the channels its stage sees means dense. The spatial
  group size ``g`` is capped at the spatial stage's input channels (``in_channels`` for
  'grouped' and 'dws', ``out_channels / m`` when the pointwise stage comes first), and the
  pointwise group size ``pg`` at the pointwise stage's input channels. A channel shuffle
  over a single group is the identity, so a 'shufflenet' point whose ``pg`` caps to one
  group becomes the BSConv-U layer it then equals. Sizes below the cap that do not divide
  the channels raise ``ValueError`` naming the block (``where``).
  """
  point = parse_point(point)
  kind = point.kind
  (spatial_in, _), pointwise = stage_channels(in_channels, out_channels, point.depth_multiplier,
                                              kind.pointwise, kind.order)
  spatial_in = max(spatial_in, 1)
  pointwise_in = None if pointwise is None else pointwise[0]
  fields = {"group_size": _cap(point.group_size, spatial_in)}
  if pointwise_in is not None:
    fields["pointwise_group_size"] = _cap(point.pointwise_group_size, pointwise_in)
    if fields["pointwise_group_size"] == pointwise_in:
      fields["shuffle"] = False
      if kind.unshuffled is not None:
        fields["name"] = kind.unshuffled
  make = lambda **kw: dataclasses.replace(point, **{**fields, **kw}).spec(  # noqa: E731
      in_channels, out_channels, kernel_size, stride=stride, default_between=default_between)
  try:
    return make()
  except ValueError as e:
    # Hint the sizes that would fit the stage that failed.
    key, field, channels = (("pg", "pointwise_group_size", pointwise_in) if "pointwise" in str(e)
                            else ("g", "group_size", spatial_in))
    hint = ""
    if fields.get(field) is not None:
      fit = [d for d in range(1, channels + 1) if channels % d == 0 and _fits(make, field, d)]
      hint = f" ({key} that fit here: {', '.join(map(str, fit)) or 'none'})"
    raise ValueError(f"{where or 'layer'} ({in_channels}->{out_channels} channels, stride {stride}) "
                     f"at spectrum point '{point}': {e}{hint}") from None


def _fits(make, field: str, size: int) -> bool:
  try:
    make(**{field: size})
  except ValueError:
    return False
  return True


def check_width_multiplier(width_multiplier: float) -> float:
  return validate.positive_number(width_multiplier, "width_multiplier")


def check_input_size(input_size: int) -> int:
  return validate.positive_int(input_size, "input_size")


@dataclasses.dataclass(frozen=True)
class UnitLayer:
  """One spectrum layer of a unit, followed by BatchNorm ("norm").

  ``role`` is its name inside the unit ("expand", "conv"), or None where the unit is this
  one layer (a ``ConvUnit``: its parameters sit at the unit's own name); ``activation``
  runs between its stages where ``spec.between`` includes 'act'.
  """
  role: str | None
  spec: ConvSpec
  activation: Activation


def unit_layers(unit: Unit) -> tuple[UnitLayer, ...]:
  """The unit's spectrum layers in execution order: what the Flax networks hold and the cost walk counts."""
  if isinstance(unit, ConvUnit):
    return (UnitLayer(None, unit.spec, unit.inner_activation),)
  expand = () if unit.expand is None else (UnitLayer("expand", unit.expand, unit.activation),)
  return (*expand, UnitLayer("conv", unit.conv, unit.activation))


def layer_specs(arch: Architecture) -> list[tuple[str, ConvSpec]]:
  """(parameter path, spectrum layer) of every conv layer, in execution order."""
  return [(unit.name if layer.role is None else f"{unit.name}/{layer.role}", layer.spec)
          for unit in arch.units for layer in unit_layers(unit)]


def architecture_cost(arch: Architecture, input_size: int | Sequence[int], *,
                      dtype_bytes: int = 4) -> list[cost.LayerCost]:
  """Per-layer costs of ``arch`` on a square (or (H, W)) input, named as the Flax parameters."""
  hw = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
  layers: list[cost.LayerCost] = []
  for prefix, spec in layer_specs(arch):
    stage_costs = cost.spec_cost(spec, hw, prefix=prefix, norm=True, dtype_bytes=dtype_bytes)
    layers.extend(stage_costs)
    hw = stage_costs[-1].out_shape[:2]
  layers.append(cost.dense_cost("classifier", arch.features, arch.num_classes, bias=True,
                                dtype_bytes=dtype_bytes))
  return layers
