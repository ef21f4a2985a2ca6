"""The registry of spectrum points: every kind, its grammar, and what reads it.

A ``SpectrumPoint`` is a layer of the spectrum without channel counts, so one value can
set every block of a network (``spec(in, out, k)`` makes the layer). Its kinds are one
registry, ``POINT_KINDS``; each entry says what the grammar accepts, which named
constructor makes its layer, what layer each point makes, how a model caps its group
sizes (``sepconv.models.arch.fit_point``), which models accept it, and how records,
tables and plots label and group it. ``WORKED_EXAMPLE`` names the points the design
notes' worked example compares (``sepconv.worked_example``, the ``seed_example``
experiment). Adding a point is one ``PointKind`` here (``register_point`` at run time),
plus a named constructor in ``sepconv.spectrum.layer`` if its layer is a new structure;
the grammar, the cost model, the Flax layers and networks, the plots and the worked
example pick it up from here.

Grammar (``parse_point``): ``NAME[:KEY=VALUE[,KEY=VALUE]...]`` with NAME a kind (or an
alias) and keys ``g`` spatial group size, ``m`` depth multiplier, ``pg`` pointwise group
size, ``shuffle`` 0/1, ``between`` none|norm|act|norm_act. Unknown names, keys or values
raise ``ValueError``; nothing is skipped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from sepconv import validate
from sepconv.spectrum.layer import (BETWEENS, Between, ConvSpec, Order, bsconv, depthwise_separable,
                                    grouped, shufflenet, standard)

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
    constructor: the named constructor of ``sepconv.spectrum.layer`` that makes its
      layer, ``constructor(in, out, k, **required keys)`` (the README's table).
    legend: its family's short name in plot legends.
    multiplier_legend: the legend name where its depth multiplier is above 1, or None.
    models: the models (``sepconv.models.MODELS``) that accept it; None: every model.
  """
  name: str
  keys: tuple[str, ...]
  family: str
  summary: str
  constructor: Callable[..., ConvSpec]
  legend: str
  required: tuple[str, ...] = ()
  pointwise: bool = False
  order: Order = "spatial_first"
  shuffle: bool = False
  default_group_size: int | None = None
  unshuffled: str | None = None
  label_suffix: str = ""
  label: str | None = None
  multiplier_legend: str | None = None
  models: tuple[str, ...] | None = None


_TWO_STAGE_KEYS = ("g", "m", "pg", "shuffle", "between")
POINT_KINDS: dict[str, PointKind] = {kind.name: kind for kind in (
    PointKind("standard", (), "standard", "dense k x k conv", standard, "standard",
              label="standard"),
    PointKind("grouped", ("g",), "grouped", "plain group conv (AlexNet, ResNeXt), g required",
              grouped, "grouped", required=("g",)),
    PointKind("dws", _TWO_STAGE_KEYS, "grouped + pointwise",
              "spatial stage + pointwise (g=1: depthwise-separable, MobileNet, Xception)",
              depthwise_separable, "grouped + pw", pointwise=True, default_group_size=1,
              label_suffix=" +pw", multiplier_legend="multiplier + pw"),
    PointKind("bsconv", _TWO_STAGE_KEYS, "grouped + pointwise",
              "pointwise first, then spatial (BSConv-U)", bsconv, "grouped + pw", pointwise=True,
              order="pointwise_first", default_group_size=1, label_suffix=" pw-first",
              multiplier_legend="multiplier + pw"),
    PointKind("shufflenet", ("pg", "g", "m", "between"), "grouped + pointwise",
              "grouped pointwise pg + shuffle, then depthwise (ShuffleNet), pg required",
              shufflenet, "grouped + pw", required=("pg",), pointwise=True,
              order="pointwise_first", shuffle=True, default_group_size=1, unshuffled="bsconv",
              label_suffix=" +pw", multiplier_legend="multiplier + pw"),
)}
ALIASES = {"depthwise_separable": "dws", "conv": "standard"}
FAMILIES = tuple(dict.fromkeys(kind.family for kind in POINT_KINDS.values()))
# The kind every comparison is anchored on.
ANCHOR = "standard"


@dataclasses.dataclass(frozen=True)
class Example:
  """One scheme of the design notes' worked example: a point and its short table label."""
  point: str
  label: str


# The worked example's schemes (28x28x192 -> 32, 5x5), in the notes' order, by full name.
WORKED_EXAMPLE: dict[str, Example] = {
    "standard conv": Example("standard", "standard conv"),
    "naive split (depth multiplier 32) + pointwise": Example("dws:m=32", "naive split (m=32) + pw"),
    "depthwise + pointwise": Example("dws", "depthwise + pw"),
    "depthwise (multiplier 4) + pointwise": Example("dws:m=4", "depthwise (m=4) + pw"),
    "grouped spatial (group size 4) + pointwise": Example("dws:g=4", "grouped spatial (g=4) + pw"),
    # 32 outputs allow at most 32 groups: each filter then sees 192 / 32 = 6 input maps.
    "grouped conv (group size 6, 32 groups)": Example("grouped:g=6", "grouped conv (g=6)"),
}


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


def register_point(kind: PointKind, examples: Mapping[str, Example] = ()) -> PointKind:
  """Adds a kind (and worked-example schemes at it) to the registry; returns the kind.

  Raises:
    ValueError: a name already taken, or keys outside the grammar's.
  """
  if kind.name in POINT_KINDS or kind.name in ALIASES:
    raise ValueError(f"spectrum point name (={kind.name!r}) is already registered")
  unknown = sorted(set(kind.keys) - set(KEYS)) + sorted(set(kind.required) - set(kind.keys))
  if unknown:
    raise ValueError(f"spectrum point {kind.name!r}: keys (={unknown}) must be among its keys "
                     f"and the grammar's {KEYS}")
  taken = sorted(set(dict(examples)) & set(WORKED_EXAMPLE))
  if taken:
    raise ValueError(f"worked example schemes (={taken}) are already registered")
  POINT_KINDS[kind.name] = kind
  WORKED_EXAMPLE.update(examples)
  return kind


def unregister_point(name: str) -> None:
  """Removes a kind and its worked-example schemes from the registry."""
  POINT_KINDS.pop(name)
  for scheme, example in list(WORKED_EXAMPLE.items()):
    if example.point.partition(":")[0] == name:
      del WORKED_EXAMPLE[scheme]


def legend_of(config: Mapping) -> str:
  """A record config's family as plot legends name it ('standard', 'grouped + pw', ...).

  The kind is the anchor where the config's ``conv`` is, else the first kind of the
  config's ``family``, else (older records) the first with its ``pointwise`` field; the
  kind's ``multiplier_legend`` applies where ``depth_multiplier`` is above 1. A family no
  kind has is its own name; '' where the config says nothing.
  """
  kind = _kind_of(config)
  if kind is None:
    family = config.get("family")
    return family if isinstance(family, str) and family else ""
  m = config.get("depth_multiplier")
  if kind.multiplier_legend is not None and isinstance(m, int) and m > 1:
    return kind.multiplier_legend
  return kind.legend


def _kind_of(config: Mapping) -> PointKind | None:
  family, pointwise = config.get("family"), config.get("pointwise")
  if config.get("conv") == ANCHOR:
    return POINT_KINDS[ANCHOR]
  if family is not None:
    return next((k for k in POINT_KINDS.values() if k.family == family), None)
  if isinstance(pointwise, bool):
    return next(k for k in POINT_KINDS.values() if k.name != ANCHOR and k.pointwise == pointwise)
  return None
