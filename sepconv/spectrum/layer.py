"""One layer of the spectrum: a frozen spec for every conv between standard and depthwise-separable.

One layer is at most two stages:

* a **spatial** stage, a k x k convolution whose filters each see ``group_size``
  input channels (1 = depthwise, all = standard; ``feature_group_count =
  channels / group_size``), and
* an optional **pointwise** 1x1 stage, itself grouped by ``pointwise_group_size``
  with an optional channel shuffle (ShuffleNet).

``order`` says which comes first: spatial then pointwise (MobileNet, Xception) or
pointwise then spatial (BSConv-U, the ShuffleNet unit's first half). ``between``
says what sits between the stages (Xception found nothing works best; MobileNet v1
puts BN + ReLU there).

Channel bookkeeping, with C_in, C_out the layer's channels and m the depth multiplier:

* spatial first, with pointwise: spatial C_in -> m * C_in, pointwise m * C_in -> C_out
  (the worked example's "depth multiplier 4" layer: 192 -> 768 -> 32).
* pointwise first: pointwise C_in -> C_out / m, spatial C_out / m -> C_out.
* no pointwise: one spatial stage C_in -> C_out; m, if not 1, must equal C_out / C_in
  and group size 1 (MobileNet's depthwise layer with multiplier m).

A ``SpectrumPoint`` (``sepconv.spectrum.points``) is the same knob without channel
counts, so one value can set every block of a network.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

from sepconv import validate

Order = Literal["spatial_first", "pointwise_first"]
Between = Literal["none", "norm", "act", "norm_act"]
ORDERS = ("spatial_first", "pointwise_first")
BETWEENS = ("none", "norm", "act", "norm_act")


def stage_channels(in_channels: int, out_channels: int, depth_multiplier: int, pointwise: bool,
                   order: Order = "spatial_first"
                   ) -> tuple[tuple[int, int], tuple[int, int] | None]:
  """((spatial in, spatial out), (pointwise in, pointwise out) or None): the bookkeeping above."""
  m = depth_multiplier
  if not pointwise:
    return (in_channels, out_channels), None
  if order == "spatial_first":
    return (in_channels, in_channels * m), (in_channels * m, out_channels)
  return (out_channels // m, out_channels), (in_channels, out_channels // m)


@dataclasses.dataclass(frozen=True)
class Stage:
  """One convolution of a layer, in the terms of ``lax.conv_general_dilated``."""
  name: str  # "spatial" or "pointwise": the Flax parameter and cost-model layer name
  in_channels: int
  out_channels: int
  kernel_size: tuple[int, int]
  stride: tuple[int, int]
  dilation: tuple[int, int]
  padding: str | tuple[tuple[int, int], tuple[int, int]]
  feature_group_count: int

  @property
  def kernel_shape(self) -> tuple[int, int, int, int]:
    """HWIO kernel shape, as flax ``nn.Conv`` builds it."""
    return (*self.kernel_size, self.in_channels // self.feature_group_count, self.out_channels)

  @property
  def group_size(self) -> int:
    return self.in_channels // self.feature_group_count


@dataclasses.dataclass(frozen=True)
class ConvSpec:
  """One layer on the spectrum from standard to depthwise-separable convolution.

  Attributes:
    in_channels: channels of the layer input.
    out_channels: channels of the layer output.
    kernel_size: spatial kernel, int or (kh, kw).
    stride: stride of the spatial stage, int or (sh, sw).
    dilation: kernel dilation of the spatial stage.
    padding: 'SAME', 'VALID', an int, or ((top, bottom), (left, right)) for the spatial stage.
    group_size: input channels each spatial filter sees; None = all (standard).
    depth_multiplier: spatial outputs per spatial input channel when a pointwise stage
      follows (see the module docstring for the other cases).
    pointwise: whether a 1x1 pointwise stage is part of the layer.
    pointwise_group_size: input channels each pointwise filter sees; None = all.
    shuffle: channel shuffle after the grouped pointwise stage (ShuffleNet).
    order: 'spatial_first' (MobileNet) or 'pointwise_first' (BSConv-U).
    between: what sits between the two stages: 'none', 'norm', 'act' or 'norm_act'.
  """
  in_channels: int
  out_channels: int
  kernel_size: int | tuple[int, int] = 3
  stride: int | tuple[int, int] = 1
  dilation: int | tuple[int, int] = 1
  padding: str | int | tuple = "SAME"
  group_size: int | None = None
  depth_multiplier: int = 1
  pointwise: bool = False
  pointwise_group_size: int | None = None
  shuffle: bool = False
  order: Order = "spatial_first"
  between: Between = "none"

  def __post_init__(self):
    set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
    validate.positive_int(self.in_channels, "in_channels")
    validate.positive_int(self.out_channels, "out_channels")
    set_("kernel_size", validate.pair(self.kernel_size, "kernel_size"))
    set_("stride", validate.pair(self.stride, "stride"))
    set_("dilation", validate.pair(self.dilation, "dilation"))
    set_("padding", validate.padding(self.padding))
    validate.positive_int(self.depth_multiplier, "depth_multiplier")
    validate.boolean(self.pointwise, "pointwise")
    validate.boolean(self.shuffle, "shuffle")
    validate.one_of(self.order, "order", ORDERS)
    validate.one_of(self.between, "between", BETWEENS)
    m = self.depth_multiplier
    if not self.pointwise:
      for field, default in (("pointwise_group_size", None), ("shuffle", False),
                             ("order", "spatial_first"), ("between", "none")):
        if getattr(self, field) != default:
          raise ValueError(f"{field} (={getattr(self, field)!r}) needs pointwise=True")
      if m != 1 and self.out_channels != m * self.in_channels:
        raise ValueError(
            f"without a pointwise stage, depth_multiplier (={m}) must equal out_channels "
            f"(={self.out_channels}) / in_channels (={self.in_channels})")
    elif self.order == "pointwise_first" and self.out_channels % m:
      raise ValueError(
          f"out_channels (={self.out_channels}) must be divisible by depth_multiplier (={m}) "
          "when the pointwise stage comes first")
    spatial_in, spatial_out = self._spatial_channels()
    g = spatial_in if self.group_size is None else validate.positive_int(self.group_size, "group_size")
    if spatial_in % g:
      raise ValueError(f"spatial input channels (={spatial_in}) must be divisible by group_size (={g})")
    groups = spatial_in // g
    if spatial_out % groups:
      raise ValueError(
          f"spatial output channels (={spatial_out}) must be divisible by the number of groups "
          f"(={groups} = {spatial_in} channels / group_size {g})")
    if not self.pointwise and m != 1 and g != 1:
      raise ValueError(f"depth_multiplier (={m}) without a pointwise stage needs group_size 1, got {g}")
    set_("group_size", g)
    if self.pointwise:
      pw_in, pw_out = self._pointwise_channels()
      pg = pw_in if self.pointwise_group_size is None else validate.positive_int(
          self.pointwise_group_size, "pointwise_group_size")
      if pw_in % pg:
        raise ValueError(f"pointwise input channels (={pw_in}) must be divisible by pointwise_group_size (={pg})")
      if pw_out % (pw_in // pg):
        raise ValueError(
            f"pointwise output channels (={pw_out}) must be divisible by the number of pointwise "
            f"groups (={pw_in // pg})")
      if self.shuffle and pw_in == pg:
        raise ValueError("shuffle=True needs a grouped pointwise stage (pointwise_group_size < its input channels)")
      set_("pointwise_group_size", pg)

  def _spatial_channels(self) -> tuple[int, int]:
    return stage_channels(self.in_channels, self.out_channels, self.depth_multiplier,
                          self.pointwise, self.order)[0]

  def _pointwise_channels(self) -> tuple[int, int]:
    return stage_channels(self.in_channels, self.out_channels, self.depth_multiplier,
                          self.pointwise, self.order)[1]

  @property
  def mid_channels(self) -> int | None:
    """Channels between the two stages (None for a single-stage layer)."""
    if not self.pointwise:
      return None
    return self._spatial_channels()[1] if self.order == "spatial_first" else self._pointwise_channels()[1]

  @property
  def groups(self) -> int:
    """feature_group_count of the spatial stage."""
    return self._spatial_channels()[0] // self.group_size

  @property
  def pointwise_groups(self) -> int | None:
    """feature_group_count of the pointwise stage (None without one)."""
    return self._pointwise_channels()[0] // self.pointwise_group_size if self.pointwise else None

  def stages(self) -> tuple[Stage, ...]:
    """The layer's convolutions in execution order."""
    s_in, s_out = self._spatial_channels()
    spatial = Stage("spatial", s_in, s_out, self.kernel_size, self.stride, self.dilation,
                    self.padding, s_in // self.group_size)
    if not self.pointwise:
      return (spatial,)
    p_in, p_out = self._pointwise_channels()
    pointwise = Stage("pointwise", p_in, p_out, (1, 1), (1, 1), (1, 1), "VALID",
                      p_in // self.pointwise_group_size)
    return (spatial, pointwise) if self.order == "spatial_first" else (pointwise, spatial)


  def ops(self, *, norm: bool = False) -> tuple[Op, ...]:
    """The layer as a program: what runs, in order, and under which names.

    Every Flax API runs this one program (``sepconv.layers.run_layer``): a ``Stage`` is a
    convolution holding "kernel" (and "bias") under the stage's name, ``Norm`` a
    BatchNorm under its name, ``Shuffle`` ShuffleNet's channel shuffle, ``ACT`` the
    layer's activation; ``norm`` ends the layer with the BatchNorm "norm".
    """
    stages = self.stages()
    out: list[Op] = []
    for i, stage in enumerate(stages):
      out.append(stage)
      if stage.name == "pointwise" and self.shuffle:
        out.append(Shuffle(stage.feature_group_count))
      if i < len(stages) - 1:
        if self.between in ("norm", "norm_act"):
          out.append(Norm(mid_norm_name(i), stage.out_channels))
        if self.between in ("act", "norm_act"):
          out.append(ACT)
    if norm:
      out.append(Norm("norm", stages[-1].out_channels))
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class Norm:
  """A BatchNorm over ``channels``: the Flax module's name and the cost model's layer name."""
  name: str
  channels: int


@dataclasses.dataclass(frozen=True)
class Shuffle:
  """ShuffleNet's channel shuffle over ``groups`` groups."""
  groups: int


@dataclasses.dataclass(frozen=True)
class Act:
  """The layer's activation (``ACT``, its one value)."""


ACT = Act()
Op = Stage | Norm | Shuffle | Act


def mid_norm_name(index: int) -> str:
  """Name of the norm that ``between`` puts after stage ``index`` (all but the last stage)."""
  return "mid_norm" if index == 0 else f"mid_norm_{index}"


# Named points of the spectrum.

def standard(in_channels: int, out_channels: int, kernel_size=3, **kw) -> ConvSpec:
  """A standard convolution: every filter sees every input channel."""
  return ConvSpec(in_channels, out_channels, kernel_size, group_size=None, **kw)


def grouped(in_channels: int, out_channels: int, kernel_size=3, *, group_size: int | None = None,
            groups: int | None = None, **kw) -> ConvSpec:
  """Plain group convolution (AlexNet, ResNeXt), by group size or by number of groups."""
  if (group_size is None) == (groups is None):
    raise ValueError(f"give exactly one of group_size (={group_size}) and groups (={groups})")
  if groups is not None:
    validate.positive_int(groups, "groups")
    if in_channels % groups:
      raise ValueError(f"in_channels (={in_channels}) must be divisible by groups (={groups})")
    group_size = in_channels // groups
  return ConvSpec(in_channels, out_channels, kernel_size, group_size=group_size, **kw)


def depthwise(in_channels: int, kernel_size=3, *, depth_multiplier: int = 1, **kw) -> ConvSpec:
  """Depthwise convolution: one k x k filter per input channel, ``depth_multiplier`` of them."""
  return ConvSpec(in_channels, in_channels * depth_multiplier, kernel_size, group_size=1,
                  depth_multiplier=depth_multiplier, **kw)


def depthwise_separable(in_channels: int, out_channels: int, kernel_size=3, *,
                        depth_multiplier: int = 1, **kw) -> ConvSpec:
  """Depthwise then pointwise 1x1 (MobileNet v1, Xception)."""
  return ConvSpec(in_channels, out_channels, kernel_size, group_size=1,
                  depth_multiplier=depth_multiplier, pointwise=True, **kw)


def grouped_separable(in_channels: int, out_channels: int, kernel_size=3, *, group_size: int,
                      depth_multiplier: int = 1, **kw) -> ConvSpec:
  """Grouped spatial stage (each filter sees ``group_size`` channels) then pointwise 1x1."""
  return ConvSpec(in_channels, out_channels, kernel_size, group_size=group_size,
                  depth_multiplier=depth_multiplier, pointwise=True, **kw)


def bsconv(in_channels: int, out_channels: int, kernel_size=3, **kw) -> ConvSpec:
  """Blueprint-separable conv, BSConv-U: pointwise 1x1 first, then depthwise."""
  return ConvSpec(in_channels, out_channels, kernel_size, group_size=1, pointwise=True,
                  order="pointwise_first", **kw)


def shufflenet(in_channels: int, out_channels: int, kernel_size=3, *, pointwise_group_size: int,
               **kw) -> ConvSpec:
  """Grouped pointwise 1x1 with channel shuffle, then depthwise (ShuffleNet unit's first half)."""
  return ConvSpec(in_channels, out_channels, kernel_size, group_size=1, pointwise=True,
                  pointwise_group_size=pointwise_group_size, shuffle=True,
                  order="pointwise_first", **kw)


def named_points(in_channels: int, out_channels: int, kernel_size: int | Sequence[int] = 3,
                 **kw) -> dict[str, ConvSpec]:
  """The famous points for one layer shape (those whose divisibility constraints hold)."""
  makers = {
      "standard": lambda: standard(in_channels, out_channels, kernel_size, **kw),
      "grouped_2": lambda: grouped(in_channels, out_channels, kernel_size, groups=2, **kw),
      "depthwise": lambda: depthwise(in_channels, kernel_size, **kw),
      "depthwise_separable": lambda: depthwise_separable(in_channels, out_channels, kernel_size, **kw),
      "depthwise_separable_m4": lambda: depthwise_separable(
          in_channels, out_channels, kernel_size, depth_multiplier=4, **kw),
      "grouped_separable_4": lambda: grouped_separable(
          in_channels, out_channels, kernel_size, group_size=4, **kw),
      "bsconv": lambda: bsconv(in_channels, out_channels, kernel_size, **kw),
      "shufflenet_4": lambda: shufflenet(in_channels, out_channels, kernel_size,
                                         pointwise_group_size=4, **kw),
  }
  out = {}
  for name, make in makers.items():
    try:
      out[name] = make()
    except ValueError:
      continue
  return out
