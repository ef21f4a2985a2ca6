"""The grid of an ablation: ``Variant`` (one spectrum point and its label) and ``spectrum_grid``.

The experiment kinds (``GranularityAblation``, ``LayerSweep``, ``PaperTables``) each live
beside their runner (``sepconv.ablation.granularity``, ``layer_sweep``, ``paper``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from sepconv.spectrum import SpectrumPoint, parse_point


@dataclasses.dataclass(frozen=True)
class Variant:
  """One grid point: a spectrum point string and how it is labelled."""
  conv: str
  label: str | None = None

  def __post_init__(self):
    object.__setattr__(self, "conv", str(parse_point(self.conv)))  # canonical, validated
    if self.label is None:
      object.__setattr__(self, "label", self.point.label)

  @property
  def point(self) -> SpectrumPoint:
    return parse_point(self.conv)

  @property
  def slug(self) -> str:
    """A file-name-safe key."""
    return re.sub(r"[^A-Za-z0-9=_.-]+", "_", self.conv)

  def fields(self) -> dict:
    """The grid coordinates stored in every record's config."""
    p = self.point
    # Spatial group size; None for the standard conv, whose group size is each layer's C_in.
    group_size = None if p.name == "standard" else p.group_size or 1
    return {"conv": self.conv, "label": self.label, "group_size": group_size,
            "depth_multiplier": p.depth_multiplier, "pointwise": p.pointwise, "family": p.family}


def spectrum_grid(group_sizes: Sequence[int], *, multipliers: Sequence[int] = (1,),
                  with_pointwise: bool = True, without_pointwise: bool = True,
                  anchor: bool = True) -> tuple[Variant, ...]:
  """The standard anchor, grouped + pointwise at each (g, m), and plain grouped at each g."""
  variants = [Variant("standard")] if anchor else []
  if with_pointwise:
    variants += [Variant(f"dws:g={g},m={m}") for g in group_sizes for m in multipliers]
  if without_pointwise:
    variants += [Variant(f"grouped:g={g}") for g in group_sizes]
  return tuple(variants)


def explicit(point: str) -> str | None:
  """The point's text with defaults written out, or None if it does not parse."""
  try:
    return str(parse_point(point).explicit())
  except ValueError:
    return None
