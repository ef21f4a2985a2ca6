"""Every pair of variants compared replicate by replicate, Holm's adjustment over all pairs.

Where ``anchor`` compares each variant with the standard conv, this compares each
pair of training rows of one data set and model: the paired difference over the
replicates both share (same seed, same fold), the same test as against the anchor
(``stats.paired_test``: corrected resampled t-test for k-fold runs, paired t-test
over seeds on a fixed split), and Holm's step-down adjustment over the family of
all m pairs of that data set and model, so "resolved" (adjusted p < 0.05) holds
family-wise over every pair at once. ``min_resolvable`` is the difference a pair
would resolve with 80% power at level 0.05/m.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

from sepconv.records.metrics import PRIMARY
from sepconv.report import anchor as _anchor
from sepconv.report import stats
from sepconv.report.aggregate import TrainRow
from sepconv.report.writer import Column, Table


@dataclasses.dataclass(frozen=True)
class Pair:
  """``first`` minus ``second``: the paired test, its Holm-adjusted p and resolvable difference."""

  first: TrainRow
  second: TrainRow
  test: stats.PairedTest
  p_adjusted: float | None
  min_resolvable: float | None
  family: int

  @property
  def resolved(self) -> bool:
    """Whether the Holm-adjusted p-value is below ``stats.ALPHA``."""
    return self.p_adjusted is not None and self.p_adjusted < stats.ALPHA


def all_pairs(rows: Sequence[TrainRow], metric: str = PRIMARY) -> list[Pair]:
  """Every pair of rows of one (dataset, model) with shared replicates, in row order.

  Rows with different ``folds`` share no replicate and are not paired.
  """
  contexts: dict[tuple, list[TrainRow]] = {}
  for r in rows:
    contexts.setdefault((str(r.config.get("dataset")), str(r.config.get("model"))), []).append(r)
  out = []
  for mine in contexts.values():
    tests = []
    for a, b in itertools.combinations(mine, 2):
      if a.folds != b.folds:
        continue
      test = stats.paired_test(a.by_replicate.get(metric, {}), b.by_replicate.get(metric, {}),
                               stats.holdout_ratio(a.folds))
      if test is not None:
        tests.append((a, b, test))
    tested = [t for _, _, t in tests if t.p is not None]
    adjusted = iter(stats.holm([t.p for t in tested]))
    m = len(tested)
    for a, b, test in tests:
      if test.p is None:
        out.append(Pair(a, b, test, None, None, m))
      else:
        out.append(Pair(a, b, test, next(adjusted),
                        stats.min_resolvable(test.se, test.df, stats.ALPHA / m), m))
  return out


def pairs_table(rows: Sequence[TrainRow], metric: str = PRIMARY) -> Table | None:
  """All pairs as a table; None with fewer than two rows to pair."""
  pairs = all_pairs(rows, metric)
  if not pairs:
    return None
  columns = (Column("variant A", "first"), Column("variant B", "second"),
             Column("runs", "runs", "count"), Column("Δ A − B (pp)", "difference", "percent"),
             Column("p", "p_value", "p"), Column("p (Holm)", "p_holm", "p"),
             Column("resolved", "resolved"),
             Column("min. resolvable (pp)", "min_resolvable", "percent"))
  body = tuple((p.first.label, p.second.label, p.test.n, p.test.interval, p.test.p, p.p_adjusted,
                "no (one run)" if p.p_adjusted is None else "yes" if p.resolved else "no",
                p.min_resolvable) for p in pairs)
  families = sorted({p.family for p in pairs})
  m = "/".join(map(str, families))
  caption = (f"Every pair of variants, A − B paired over shared replicates with the "
             f"{_anchor.method(rows)} and its 95% interval (per pair, unadjusted); p: two-sided; "
             f"p (Holm): Holm's step-down adjustment over all {m} pairs; resolved: p (Holm) < "
             f"{stats.ALPHA:g}. min. resolvable: smallest difference a pair would resolve with "
             f"{stats.POWER:.0%} power at level {stats.ALPHA:g}/{m}.")
  return Table("pairs", f"All pairs of variants ({_anchor.design(rows)})", columns, body,
               caption=caption)
