"""Spectrum points: the knob that moves a whole network along the spectrum, and its grammar.

A ``SpectrumPoint`` is a layer of the spectrum without channel counts, so one value can
set every block of a network (``spec(in, out, k)`` makes the layer). Its kinds are one
data table, ``POINT_KINDS``: what the grammar accepts, what layer each kind makes, how a
model caps its group sizes (``sepconv.models.arch.fit_point``), and how tables label and
group it. A new kind of point is one more row there.

Grammar (``parse_point``): ``NAME[:KEY=VALUE[,KEY=VALUE]...]`` with NAME a kind (or an
alias) and keys ``g`` spatial group size, ``m`` depth multiplier, ``pg`` pointwise group
size, ``shuffle`` 0/1, ``between`` none|norm|act|norm_act. Unknown names, keys or values
raise ``ValueError``; nothing is skipped.
"""

from __future__ import annotations

import dataclasses

from sepconv import validate
from sepconv.spectrum.layer import BETWEENS, Between, ConvSpec, Order

KEYS = ("g", "m", "pg", "shuffle", "between")
_FIELD = {"g": "group_size", "m": "depth_multiplier", "pg": "pointwise_group_size",
          "shuffle": "shuffle", "between": "between"}
_DEFAULTS = {"g": None, "m": 1, "pg": None, "shuffle": False, "between": None}


@dataclasses.dataclass(frozen=True)
class PointKind:
  """One kind of spectrum point.

  Attributes:
    name: the grammar's NAME.
    keys: the keys it accepts; ``required`` must be given.
    pointwise: whether its layers have a pointwise 1x1 stage.
    order: which stage comes first when there are two.
    shuffle: whether it always shuffles channels after the pointwise stage.
    default_group_size: the spatial group size when ``g`` is not given (None = dense).
    unshuffled: the kind it equals once its grouped pointwise stage is one group
      (a shuffle over one group is the identity), or None.
    family: how tables and plots group it: which way of closing the gap to a
      standard conv it takes (the design notes' two, plus the anchor).
    label_suffix: appended to its table label ('+pw', 'pw-first'); ``label`` fixes it.
    label: a fixed table label (the anchor's), or None to build one from the keys.
    summary: one line for help texts.
  """
  name: str
  keys: tuple[str, ...]
  family: str
  summary: str
  required: tuple[str, ...] = ()
  pointwise: bool = False
  order: Order = "spatial_first"
  shuffle: bool = False
  default_group_size: int | None = None
  unshuffled: str | None = None
  label_suffix: str = ""
  label: str | None = None


_TWO_STAGE_KEYS = ("g", "m", "pg", "shuffle", "between")
POINT_KINDS: dict[str, PointKind] = {kind.name: kind for kind in (
    PointKind("standard", (), "standard", "dense k x k conv", label="standard"),
    PointKind("grouped", ("g",), "grouped", "plain group conv (AlexNet, ResNeXt), g required",
              required=("g",)),
    PointKind("dws", _TWO_STAGE_KEYS, "grouped + pointwise",
              "spatial stage + pointwise (g=1: depthwise-separable, MobileNet, Xception)",
              pointwise=True, default_group_size=1, label_suffix=" +pw"),
    PointKind("bsconv", _TWO_STAGE_KEYS, "grouped + pointwise",
              "pointwise first, then spatial (BSConv-U)", pointwise=True,
              order="pointwise_first", default_group_size=1, label_suffix=" pw-first"),
    PointKind("shufflenet", ("pg", "g", "m", "between"), "grouped + pointwise",
              "grouped pointwise pg + shuffle, then depthwise (ShuffleNet), pg required",
              required=("pg",), pointwise=True, order="pointwise_first", shuffle=True,
              default_group_size=1, unshuffled="bsconv", label_suffix=" +pw"),
)}
ALIASES = {"depthwise_separable": "dws", "conv": "standard"}
FAMILIES = tuple(dict.fromkeys(kind.family for kind in POINT_KINDS.values()))


@dataclasses.dataclass(frozen=True)
class SpectrumPoint:
  """A spectrum point without channel counts: ``spec(in, out, k, ...)`` makes the layer.

  ``name`` is a kind of ``POINT_KINDS`` (see the module docstring for the grammar);
  unset keys take the kind's defaults; keys a kind does not take raise ``ValueError``.
  """
  name: str
  group_size: int | None = None
  depth_multiplier: int = 1
  pointwise_group_size: int | None = None
  shuffle: bool = False
  between: Between | None = None  # None: the model's own default

  def __post_init__(self):
    kind = POINT_KINDS.get(self.name)
    if kind is None:
      raise ValueError(f"spectrum point name (={self.name!r}) must be one of {tuple(POINT_KINDS)}")
    for key in KEYS:
      value = getattr(self, _FIELD[key])
      if key not in kind.keys and value != _DEFAULTS[key]:
        raise ValueError(f"spectrum point {self.name!r} takes no {key!r} (got {value!r})")
    for key in kind.required:
      if getattr(self, _FIELD[key]) is None:
        raise ValueError(f"spectrum point {self.name!r} needs {key}=...")
    if self.between is not None:
      validate.one_of(self.between, "between", BETWEENS)

  def explicit(self) -> SpectrumPoint:
    """The same point with its kind's default group size written out ('dws' -> 'dws:g=1')."""
    if self.group_size is not None or self.kind.default_group_size is None:
      return self
    return dataclasses.replace(self, group_size=self.kind.default_group_size)

  @property
  def kind(self) -> PointKind:
    return POINT_KINDS[self.name]

  @property
  def pointwise(self) -> bool:
    return self.kind.pointwise

  @property
  def family(self) -> str:
    """Which way of closing the gap to a standard conv the point takes (``PointKind.family``)."""
    return self.kind.family

  @property
  def label(self) -> str:
    """A short table label, e.g. 'g=4 +pw', 'g=1 m=2 +pw', 'g=8', 'standard'."""
    kind = self.kind
    if kind.label is not None:
      return kind.label
    g = self.group_size if self.group_size is not None else kind.default_group_size
    text = f"g={g}"
    if self.depth_multiplier != 1:
      text += f" m={self.depth_multiplier}"
    if self.shuffle or kind.shuffle:
      text += f" pg={self.pointwise_group_size} shuffle"
    return text + kind.label_suffix

  def spec(self, in_channels: int, out_channels: int, kernel_size=3, *, default_between: Between = "none",
           **kw) -> ConvSpec:
    """The layer at this point for the given channels; ``kw`` are ConvSpec geometry fields."""
    kind = self.kind
    group_size = self.group_size if self.group_size is not None else kind.default_group_size
    if not kind.pointwise:
      return ConvSpec(in_channels, out_channels, kernel_size, group_size=group_size, **kw)
    return ConvSpec(in_channels, out_channels, kernel_size, group_size=group_size,
                    depth_multiplier=self.depth_multiplier, pointwise=True,
                    pointwise_group_size=self.pointwise_group_size,
                    shuffle=self.shuffle or kind.shuffle, order=kind.order,
                    between=self.between or default_between, **kw)

  def __str__(self) -> str:
    parts = []
    for key in KEYS:
      value = getattr(self, _FIELD[key])
      if value != _DEFAULTS[key]:
        parts.append(f"{key}={int(value) if isinstance(value, bool) else value}")
    return self.name + (":" + ",".join(parts) if parts else "")


def parse_point(text: str | SpectrumPoint) -> SpectrumPoint:
  """Parses ``NAME[:KEY=VALUE,...]`` strictly (see the module docstring)."""
  if isinstance(text, SpectrumPoint):
    return text
  if not isinstance(text, str) or not text.strip():
    raise ValueError(f"spectrum point (={text!r}) must be a string like 'dws:g=4,m=1'")
  name, _, rest = text.strip().partition(":")
  name = ALIASES.get(name, name)
  if name not in POINT_KINDS:
    raise ValueError(
        f"spectrum point name (={name!r}) must be one of {tuple(POINT_KINDS) + tuple(ALIASES)}")
  fields = {}
  for item in filter(None, rest.split(",")) if rest else ():
    key, eq, value = item.partition("=")
    key, value = key.strip(), value.strip()
    if not eq or key not in _FIELD:
      raise ValueError(f"spectrum point {text!r}: {item!r} is not KEY=VALUE with KEY in {KEYS}")
    if _FIELD[key] in fields:
      raise ValueError(f"spectrum point {text!r}: key {key!r} given twice")
    if key == "between":
      fields["between"] = value
    elif key == "shuffle":
      if value not in ("0", "1"):
        raise ValueError(f"spectrum point {text!r}: shuffle (={value!r}) must be 0 or 1")
      fields["shuffle"] = value == "1"
    else:
      if not value.isdigit() or int(value) < 1:
        raise ValueError(f"spectrum point {text!r}: {key} (={value!r}) must be a positive int")
      fields[_FIELD[key]] = int(value)
  return SpectrumPoint(name, **fields)


def grammar_help() -> str:
  """The point kinds in one line each, for command-line help."""
  return "; ".join(f"{k.name}: {k.summary}" for k in POINT_KINDS.values())
