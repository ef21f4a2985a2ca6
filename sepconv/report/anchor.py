"""Which variants differ from the standard anchor, and a reading of the results from that alone.

Each training row is compared with the anchor of its data set and model (the
standard conv: config ``conv`` 'standard', else family or label 'standard')
seed by seed: both were trained with the same seed on the same data split, so
the per-seed differences are paired and their mean gets a t-interval
(``stats.paired_difference``). A difference is *resolved* where that 95%
interval excludes zero; unresolved is not "equal", only "not told apart by
these seeds". With one common seed nothing is resolved.

``reading`` writes the paragraph the README shows: which variants are resolved
from the anchor, by how much, at what share of its mult-adds, and how large a
difference the seeds could have resolved. Every number in it comes from the rows.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from sepconv.records.metrics import PRIMARY
from sepconv.report import stats
from sepconv.report.aggregate import TrainRow

METRIC = PRIMARY


def is_anchor(row: TrainRow) -> bool:
  """Whether ``row`` is a standard conv."""
  c = row.config
  return c.get("conv") == "standard" or (
      "conv" not in c and (c.get("family") == "standard" or row.label == "standard"))


def _context(row: TrainRow) -> tuple[str, str]:
  return (str(row.config.get("dataset")), str(row.config.get("model")))


@dataclasses.dataclass(frozen=True)
class Versus:
  """One row against its anchor: the paired difference of ``metric`` (None if incomparable)."""

  row: TrainRow
  anchor: TrainRow | None
  difference: stats.Interval | None

  @property
  def resolved(self) -> bool:
    return self.difference is not None and self.difference.resolved


def versus_anchor(rows: Sequence[TrainRow], metric: str = METRIC) -> list[Versus]:
  """Every row against the anchor of its (dataset, model), in row order.

  The anchor row itself and rows without an anchor or without shared seeds get
  ``difference`` None.
  """
  anchors = {}
  for r in rows:
    if is_anchor(r):
      anchors.setdefault(_context(r), r)
  out = []
  for r in rows:
    anchor = anchors.get(_context(r))
    diff = None
    if anchor is not None and anchor is not r:
      diff = stats.paired_difference(r.by_seed.get(metric, {}), anchor.by_seed.get(metric, {}))
    out.append(Versus(r, anchor, diff))
  return out


def seed_counts(rows: Sequence[TrainRow]) -> tuple[int, int]:
  """Fewest and most seeds per row."""
  counts = [r.seeds for r in rows] or [0]
  return min(counts), max(counts)


def caption(rows: Sequence[TrainRow]) -> str:
  """What the ± and the marks of the training table mean, with n and the interval."""
  lo, hi = seed_counts(rows)
  if hi < 2:
    return ("One seed: no interval, differences unresolved; the numbers are single runs "
            "and imply no ordering.")
  n = f"n = {lo}" if lo == hi else f"n = {lo} to {hi}"
  df = f"{lo - 1} degree{'s' if lo - 1 != 1 else ''} of freedom" if lo == hi else "n - 1 degrees of freedom"
  text = (f"Mean ± half-width of the 95% Student t-interval over {n} seeds ({df}). "
          "Δ: paired difference from the standard anchor, seed by seed (same seeds, same data "
          "split), with its 95% t-interval; resolved: that interval excludes 0.")
  if lo < 2:
    text += " Rows with one seed have no interval and are unresolved."
  return text


def _pp(x: float) -> str:
  return f"{100.0 * x:.2f}"


def _signed(x: float) -> str:
  return ("+" if x > 0 else "−" if x < 0 else "") + _pp(abs(x))


def _share(row: TrainRow, anchor: TrainRow) -> str | None:
  a, b = row.stats.get("mult_adds"), anchor.stats.get("mult_adds")
  if a is None or b is None or not b.mean:
    return None
  return f"{100.0 * a.mean / b.mean:.0f}%"


def _one(v: Versus) -> str:
  d = v.difference
  share = _share(v.row, v.anchor)
  where = "above" if d.mean > 0 else "below"
  text = (f"{v.row.label} ({_pp(abs(d.mean))} points {where}, 95% CI {_signed(d.low)} to "
          f"{_signed(d.high)}")
  return text + (f", at {share} of the anchor's mult-adds)" if share else ")")


def reading(rows: Sequence[TrainRow], metric: str = METRIC) -> str | None:
  """A short paragraph on what the training rows show against the anchor; None without one."""
  compared = [v for v in versus_anchor(rows, metric) if v.anchor is not None and v.anchor is not v.row]
  anchors = list({id(v.anchor): v.anchor for v in compared}.values())
  if not compared:
    return None
  parts = []
  for anchor in anchors:
    mine = [v for v in compared if v.anchor is anchor]
    a = anchor.stats.get(metric)
    where = ", ".join(f"{k} {anchor.config[k]}" for k in ("dataset", "model") if k in anchor.config)
    head = f"Against the standard anchor ({where}: " if where else "Against the standard anchor ("
    head += f"{_pp(a.mean)}% test accuracy" if a else "no test accuracy"
    if a and a.ci is not None:
      head += f" ± {_pp(a.ci)}"
    ma = anchor.stats.get("mult_adds")
    head += f", {ma.mean:,.0f} mult-adds" if ma else ""
    paired = [v for v in mine if v.difference is not None and v.difference.half_width is not None]
    if not paired:
      parts.append(head + f"), {len(mine)} variant{'s' if len(mine) != 1 else ''} with one "
                   "common seed: no interval, so no difference is resolved and the table "
                   "implies no ordering.")
      continue
    n = sorted({v.difference.n for v in paired})
    seeds = f"{n[0]}" if len(n) == 1 else f"{n[0]} to {n[-1]}"
    head += f"; {seeds} paired seeds"
    resolved = [v for v in paired if v.resolved]
    lines = [head + ")"]
    below = sorted((v for v in resolved if v.difference.mean < 0), key=lambda v: v.difference.mean)
    above = sorted((v for v in resolved if v.difference.mean > 0), key=lambda v: -v.difference.mean)
    if not resolved:
      lines.append(f", none of the {len(mine)} variants is resolved from it at 95%.")
    else:
      lines.append(f", {len(resolved)} of {len(mine)} variants "
                   f"{'is' if len(resolved) == 1 else 'are'} resolved from it at 95%: ")
      lines.append("; ".join([*map(_one, below), *map(_one, above)]) + ".")
    unresolved = [v for v in paired if not v.resolved]
    if unresolved:
      widths = sorted(v.difference.half_width for v in unresolved)
      diffs = sorted(v.difference.mean for v in unresolved)
      cheapest = min(unresolved, key=lambda v: (v.row.stats["mult_adds"].mean
                                                if "mult_adds" in v.row.stats else math.inf))
      who = "Their" if not resolved else f"The other {len(unresolved)} variants'"
      lines.append(f" {who} differences ({_signed(diffs[0])} to {_signed(diffs[-1])} points) lie "
                   f"inside intervals {_pp(widths[0])} to {_pp(widths[-1])} points wide on each "
                   "side: these seeds do not order them, which is not evidence that they are equal")
      share = _share(cheapest.row, anchor)
      if share:
        lines.append(f"; the cheapest of them, {cheapest.row.label}, needs {share} of the "
                     "anchor's mult-adds")
      lines.append(".")
    single = [v for v in mine if v.difference is None or v.difference.half_width is None]
    if single:
      lines.append(f" {len(single)} variant{'s' if len(single) != 1 else ''} with one common "
                   "seed: unresolved.")
    parts.append("".join(lines))
  return " ".join(parts)
