"""Which variants differ from the standard anchor, and a reading of the results from that alone.

Each training row is compared with the anchor of its data set and model (the
standard conv: config ``conv`` 'standard', else family or label 'standard')
replicate by replicate: both were trained with the same seed on the same data
split, or the same fold of the same k-fold partition, so the differences are
paired. Their mean gets the corrected resampled t-test of Nadeau & Bengio (2003)
for k-fold runs, the plain paired t-test over seeds on a fixed split
(``stats.paired_test``). The comparisons with one anchor form a family whose
p-values get Holm's step-down adjustment (``stats.holm``); a difference is
*resolved* where its adjusted p-value is below ``stats.ALPHA`` (0.05). Unresolved
is not "equal", only "not told apart by these runs": each comparison also states
the smallest difference it would resolve with 80% power (``stats.min_resolvable``
at Holm's strictest level, alpha/m, so the figure is conservative), and the
reading gives the median of that over the family.

``reading`` writes the paragraph the README shows: which variants are resolved
from the anchor, by how much, with what adjusted p-value, at what share of its
mult-adds, and how large a difference the runs could have resolved. Every number
in it comes from the rows.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence

from sepconv.records.metrics import PRIMARY
from sepconv.report import stats
from sepconv.report.aggregate import TrainRow

METRIC = PRIMARY
TEST_NAMES = {True: "corrected resampled t-test (Nadeau & Bengio 2003)",
              False: "paired t-test over seeds on a fixed split"}


def is_anchor(row: TrainRow) -> bool:
  """Whether ``row`` is a standard conv."""
  c = row.config
  return c.get("conv") == "standard" or (
      "conv" not in c and (c.get("family") == "standard" or row.label == "standard"))


def _context(row: TrainRow) -> tuple[str, str]:
  return (str(row.config.get("dataset")), str(row.config.get("model")))


@dataclasses.dataclass(frozen=True)
class Versus:
  """One row against its anchor: the paired test of ``metric`` (None if incomparable).

  ``p_adjusted`` is Holm's adjustment over the anchor's family of ``family``
  comparisons; ``min_resolvable`` the difference resolved with 80% power at
  level alpha / ``family``.
  """

  row: TrainRow
  anchor: TrainRow | None
  test: stats.PairedTest | None
  p_adjusted: float | None = None
  min_resolvable: float | None = None
  family: int = 0

  @property
  def difference(self) -> stats.Interval | None:
    return None if self.test is None else self.test.interval

  @property
  def resolved(self) -> bool:
    """Whether the Holm-adjusted p-value is below ``stats.ALPHA``."""
    return self.p_adjusted is not None and self.p_adjusted < stats.ALPHA


def versus_anchor(rows: Sequence[TrainRow], metric: str = METRIC) -> list[Versus]:
  """Every row against the anchor of its (dataset, model), in row order.

  The anchor row itself and rows without an anchor or without shared replicates
  get ``test`` None; rows with one shared replicate get a test without p-value.
  """
  anchors = {}
  for r in rows:
    if is_anchor(r):
      anchors.setdefault(_context(r), r)
  tests = []
  for r in rows:
    anchor = anchors.get(_context(r))
    test = None
    if anchor is not None and anchor is not r:
      test = stats.paired_test(r.by_replicate.get(metric, {}), anchor.by_replicate.get(metric, {}),
                               stats.holdout_ratio(anchor.folds))
    tests.append((r, anchor, test))
  adjusted, family = {}, {}
  for anchor in anchors.values():
    mine = [i for i, (_, a, t) in enumerate(tests) if a is anchor and t is not None and t.p is not None]
    for i, p in zip(mine, stats.holm([tests[i][2].p for i in mine])):
      adjusted[i], family[i] = p, len(mine)
  out = []
  for i, (r, anchor, test) in enumerate(tests):
    if i not in adjusted:
      out.append(Versus(r, anchor, test))
      continue
    mdd = stats.min_resolvable(test.se, test.df, stats.ALPHA / family[i])
    out.append(Versus(r, anchor, test, adjusted[i], mdd, family[i]))
  return out


def seed_counts(rows: Sequence[TrainRow]) -> tuple[int, int]:
  """Fewest and most runs (replicates) per row."""
  counts = [r.seeds for r in rows] or [0]
  return min(counts), max(counts)


def design(rows: Sequence[TrainRow]) -> str:
  """What the runs are: 'seeds' on a fixed split, 'runs, seeds × k folds' with k-fold."""
  folds = sorted({r.folds for r in rows} - {0})
  if not folds:
    return "seeds"
  k = "/".join(map(str, folds))
  return f"runs, seeds × {k} folds"


def method(rows: Sequence[TrainRow]) -> str:
  """The paired test the comparison uses, with its reference."""
  return TEST_NAMES[any(r.folds for r in rows)]


def caption(rows: Sequence[TrainRow]) -> str:
  """What the ± and the columns of the training table mean: n, the test, the adjustment."""
  lo, hi = seed_counts(rows)
  if hi < 2:
    return ("One run per variant: no interval, differences unresolved; the numbers are single "
            "runs and imply no ordering.")
  n = f"n = {lo}" if lo == hi else f"n = {lo} to {hi}"
  df = f"{lo - 1} degree{'s' if lo - 1 != 1 else ''} of freedom" if lo == hi else "n - 1 degrees of freedom"
  unit = design(rows)
  text = f"Mean ± half-width of the 95% Student t-interval over {n} {unit} ({df}"
  folds = sorted({r.folds for r in rows} - {0})
  if folds:
    ks = ", ".join(f"1/{k - 1} for k = {k}" for k in folds)
    text += ("; uncorrected: folds share training data, so it is narrower than the comparison's)."
             " Δ: paired difference from the standard anchor over shared (seed, fold) replicates, "
             "same folds and seeds, with the corrected resampled t-test (Nadeau & Bengio 2003): "
             "t = mean / sqrt((1/J + n_test/n_train) s^2) on J − 1 degrees of freedom, "
             f"n_test/n_train = {ks}, and its 95% interval from the same standard error")
  else:
    text += ("). Δ: paired difference from the standard anchor over shared seeds (same seeds, same "
             "data split), paired t-test over seeds on a fixed split, with its 95% t-interval")
  text += (" (per comparison, unadjusted). p: two-sided p-value; p (Holm): Holm's step-down "
           "adjustment over the comparisons with the anchor; resolved: p (Holm) < "
           f"{stats.ALPHA:g}. min. resolvable: smallest difference that comparison would resolve "
           f"with {stats.POWER:.0%} power at level {stats.ALPHA:g}/m (Holm's strictest step, m "
           f"comparisons): (t quantile at 1 − {stats.ALPHA:g}/(2m) + t quantile at {stats.POWER:g}) × "
           "standard error.")
  if lo < 2:
    text += " Rows with one run have no interval and are unresolved."
  return text


def _pp(x: float) -> str:
  return f"{100.0 * x:.2f}"


def _signed(x: float) -> str:
  return ("+" if x > 0 else "−" if x < 0 else "") + _pp(abs(x))


def p_text(p: float) -> str:
  """A p-value for prose and tables: three decimals, or '< 0.001'."""
  return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _p_is(p: float) -> str:
  """'= 0.123' or '< 0.001'."""
  text = p_text(p)
  return text if text.startswith("<") else "= " + text


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
          f"{_signed(d.high)}, adjusted p {_p_is(v.p_adjusted)}")
  return text + (f", at {share} of the anchor's mult-adds)" if share else ")")


def _head(anchor: TrainRow, metric: str) -> str:
  a = anchor.stats.get(metric)
  where = ", ".join(f"{k} {anchor.config[k]}" for k in ("dataset", "model") if k in anchor.config)
  head = f"Against the standard anchor ({where}: " if where else "Against the standard anchor ("
  head += f"{_pp(a.mean)}% test accuracy" if a else "no test accuracy"
  if a and a.ci is not None:
    head += f" ± {_pp(a.ci)}"
  ma = anchor.stats.get("mult_adds")
  return head + (f", {ma.mean:,.0f} mult-adds" if ma else "")


def _family(anchor: TrainRow, paired: list[Versus]) -> str:
  """'; 12 paired seeds, paired t-test ..., Holm over 12 comparisons'."""
  n = sorted({v.test.n for v in paired})
  count = f"{n[0]}" if len(n) == 1 else f"{n[0]} to {n[-1]}"
  unit = "seeds" if not anchor.folds else f"runs ({anchor.folds}-fold cross-validation × seeds)"
  return (f"; {count} paired {unit}, {TEST_NAMES[bool(anchor.folds)]}, Holm's adjustment over "
          f"{len(paired)} comparison{'s' if len(paired) != 1 else ''})")


def _p_span(ps: list[float]) -> str:
  """'= 0.123', '< 0.001' or '0.219 to 1.000' of sorted p-values."""
  span = _span(ps, p_text)
  return span if " to " in span else _p_is(ps[0])


def _span(values: list[float], fmt) -> str:
  """'a to b' of sorted ``values``, or the one value where they are equal."""
  lo, hi = fmt(values[0]), fmt(values[-1])
  return lo if lo == hi else f"{lo} to {hi}"


def _unresolved(unresolved: list[Versus], resolved: list[Versus], anchor: TrainRow) -> str:
  diffs = sorted(v.difference.mean for v in unresolved)
  ps = sorted(v.p_adjusted for v in unresolved)
  one = len(unresolved) == 1
  if not resolved:
    who = "Its difference" if one else "Their differences"
  else:
    who = "The other variant's difference" if one else f"The other {len(unresolved)} variants' differences"
  text = (f" {who} ({_span(diffs, _signed)} points) {'is' if one else 'are'} not resolved "
          f"(adjusted p {_p_span(ps)}): these runs do not order "
          f"{'it' if one else 'them'}, which is not evidence that "
          f"{'it equals the anchor' if one else 'they are equal'}")
  cheapest = min(unresolved, key=lambda v: (v.row.stats["mult_adds"].mean
                                            if "mult_adds" in v.row.stats else math.inf))
  share = _share(cheapest.row, anchor)
  if share and not one:
    text += f"; the cheapest of them, {cheapest.row.label}, needs {share} of the anchor's mult-adds"
  return text + "."


def _power(paired: list[Versus]) -> str:
  mdd = sorted(v.min_resolvable for v in paired)
  m = len(paired)
  text = (f" Differences smaller than {_pp(statistics.median(mdd))} points cannot be told apart "
          f"by this run (the smallest difference resolved with {stats.POWER:.0%} power at level "
          f"{stats.ALPHA:g}/{m}")
  if m > 1:
    text += f", median over the {m} comparisons; {_pp(mdd[0])} to {_pp(mdd[-1])} by variant"
  return text + ")."


def reading(rows: Sequence[TrainRow], metric: str = METRIC) -> str | None:
  """A short paragraph on what the training rows show against the anchor; None without one."""
  compared = [v for v in versus_anchor(rows, metric) if v.anchor is not None and v.anchor is not v.row]
  anchors = list({id(v.anchor): v.anchor for v in compared}.values())
  if not compared:
    return None
  parts = []
  for anchor in anchors:
    mine = [v for v in compared if v.anchor is anchor]
    head = _head(anchor, metric)
    paired = [v for v in mine if v.p_adjusted is not None]
    if not paired:
      parts.append(head + f"), {len(mine)} variant{'s' if len(mine) != 1 else ''} with one "
                   "common run: no interval, so no difference is resolved and the table "
                   "implies no ordering.")
      continue
    lines = [head + _family(anchor, paired)]
    resolved = [v for v in paired if v.resolved]
    below = sorted((v for v in resolved if v.difference.mean < 0), key=lambda v: v.difference.mean)
    above = sorted((v for v in resolved if v.difference.mean > 0), key=lambda v: -v.difference.mean)
    if not resolved:
      lines.append(f", none of the {len(mine)} variants is resolved from it "
                   f"(Holm-adjusted p < {stats.ALPHA:g}).")
    else:
      lines.append(f", {len(resolved)} of {len(mine)} variants "
                   f"{'is' if len(resolved) == 1 else 'are'} resolved from it "
                   f"(Holm-adjusted p < {stats.ALPHA:g}): ")
      lines.append("; ".join([*map(_one, below), *map(_one, above)]) + ".")
    unresolved = [v for v in paired if not v.resolved]
    if unresolved:
      lines.append(_unresolved(unresolved, resolved, anchor))
    lines.append(_power(paired))
    single = [v for v in mine if v.p_adjusted is None]
    if single:
      lines.append(f" {len(single)} variant{'s' if len(single) != 1 else ''} with one common "
                   "run: unresolved.")
    parts.append("".join(lines))
  return " ".join(parts)
