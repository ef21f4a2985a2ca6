"""Inference over runs: t-intervals, the corrected resampled t-test, Holm's adjustment, power.

Distributions come from ``scipy.stats``; the formulas are written out here once.

* ``mean_interval``: mean of n values and the half-width of its two-sided
  t-interval, t_{(1+level)/2, n-1} * s / sqrt(n); none for one value.
* ``paired_test``: a variant against the anchor replicate by replicate (both
  trained on the same data split, or fold, with the same seed). With J paired
  differences d_j of mean m and sample variance s^2, the corrected resampled
  t-test of Nadeau & Bengio (2003, "Inference for the generalization error",
  Machine Learning 52, eq. for the corrected resampled t) uses the variance
  (1/J + n_test/n_train) * s^2, so t = m / sqrt((1/J + n_test/n_train) s^2) on
  J - 1 degrees of freedom, and the interval uses the same standard error. The
  term n_test/n_train accounts for the training sets of k-fold runs overlapping
  (it is 1/(k-1) for k folds: ``holdout_ratio``); on a fixed split, where the
  replicates are seeds on one training set, it is 0 and the test is the plain
  paired t-test over seeds.
* ``holm``: Holm's (1979) step-down adjustment of a family of p-values.
* ``min_resolvable``: the smallest true difference the design resolves with
  80% power at level alpha, (t_{1-alpha/2, df} + t_{power, df}) * SE.
* ``two_sample_difference``: two independent sets of values (a reference and a
  rerun): Welch's interval for the difference of means; with one value on one
  side, the prediction interval of a new value around the other side's mean.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence

from scipy import stats as _scipy_stats

LEVEL = 0.95
ALPHA = 0.05  # family-wise error rate of "resolved" (after Holm's adjustment)
POWER = 0.8


def t_cdf(x: float, df: float) -> float:
  """P(T <= x) for Student's t with ``df`` degrees of freedom."""
  if df <= 0:
    raise ValueError(f"df (={df}) must be positive")
  return float(_scipy_stats.t.cdf(x, df))


def t_quantile(p: float, df: float) -> float:
  """The ``p`` quantile of Student's t with ``df`` degrees of freedom."""
  if not 0.0 < p < 1.0:
    raise ValueError(f"p (={p}) must be in (0, 1)")
  if df <= 0:
    raise ValueError(f"df (={df}) must be positive")
  return float(_scipy_stats.t.ppf(p, df))


def t_critical(df: float, level: float = LEVEL) -> float:
  """Two-sided critical value: half-width of a ``level`` interval in standard errors."""
  if not 0.0 < level < 1.0:
    raise ValueError(f"level (={level}) must be in (0, 1)")
  return t_quantile(0.5 + level / 2.0, df)


@dataclasses.dataclass(frozen=True)
class Interval:
  """A mean (or mean difference) with the half-width of its t-interval (None: no interval)."""

  mean: float
  half_width: float | None
  n: int
  level: float = LEVEL

  @property
  def low(self) -> float | None:
    return None if self.half_width is None else self.mean - self.half_width

  @property
  def high(self) -> float | None:
    return None if self.half_width is None else self.mean + self.half_width

  @property
  def resolved(self) -> bool:
    """Whether the interval excludes zero (never with no interval)."""
    return self.half_width is not None and abs(self.mean) > self.half_width


def _mean_std(xs: list[float]) -> tuple[float, float | None]:
  mean = math.fsum(xs) / len(xs)
  if len(xs) < 2:
    return mean, None
  return mean, math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (len(xs) - 1))


def half_width(std: float | None, n: int, level: float = LEVEL) -> float | None:
  """t-interval half-width of a mean of ``n`` values with sample std ``std``."""
  if std is None or n < 2:
    return None
  return t_critical(n - 1, level) * std / math.sqrt(n)


def mean_interval(values: Iterable[float], level: float = LEVEL) -> Interval | None:
  """Mean of ``values`` with its t-interval; None for no values."""
  xs = [float(v) for v in values]
  if not xs:
    return None
  mean, std = _mean_std(xs)
  return Interval(mean, half_width(std, len(xs), level), len(xs), level)


def holdout_ratio(folds: int | None) -> float:
  """n_test / n_train of one run: 1/(k-1) for k-fold cross-validation, 0 for a fixed split.

  ``folds`` None or 0 is a fixed split (no correction: its runs share one training set).

  Raises:
    ValueError: ``folds`` is 1 or negative.
  """
  if not folds:
    return 0.0
  if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
    raise ValueError(f"folds (={folds!r}) must be 0 (a fixed split) or an integer k >= 2")
  return 1.0 / (folds - 1)


@dataclasses.dataclass(frozen=True)
class PairedTest:
  """A paired difference over J replicates with its corrected t-test and interval.

  ``se`` is the corrected standard error sqrt((1/J + ratio) s^2); ``t``, ``df``, ``p``
  (two-sided) and ``half_width`` are None with one replicate.
  """

  mean: float
  se: float | None
  t: float | None
  df: int | None
  p: float | None
  half_width: float | None
  n: int
  ratio: float = 0.0  # n_test / n_train (0: fixed split)
  level: float = LEVEL

  @property
  def interval(self) -> Interval:
    return Interval(self.mean, self.half_width, self.n, self.level)


def corrected_t_test(differences: Iterable[float], ratio: float = 0.0,
                     level: float = LEVEL) -> PairedTest | None:
  """The corrected resampled t-test (Nadeau & Bengio 2003) of paired ``differences``.

  Args:
    differences: one paired difference per replicate (seed, or seed and fold).
    ratio: n_test / n_train of one run (``holdout_ratio``); 0 gives the plain
      paired t-test.
    level: confidence level of the interval.

  Returns:
    None for no differences. Zero spread gives a zero-width interval, and p = 0
    unless the mean is 0 too (then p = 1).
  """
  if ratio < 0 or not math.isfinite(ratio):
    raise ValueError(f"ratio (={ratio}) must be a finite n_test/n_train >= 0")
  d = [float(x) for x in differences]
  if not d:
    return None
  mean, std = _mean_std(d)
  if std is None:
    return PairedTest(mean, None, None, None, None, None, 1, ratio, level)
  n, df = len(d), len(d) - 1
  se = math.sqrt((1.0 / n + ratio) * std * std)
  if se == 0.0:
    t = 0.0 if mean == 0 else math.copysign(math.inf, mean)
    p = 1.0 if mean == 0 else 0.0
  else:
    t = mean / se
    p = float(2.0 * _scipy_stats.t.sf(abs(t), df))
  return PairedTest(mean, se, t, df, p, t_critical(df, level) * se, n, ratio, level)


def paired_test(values: Mapping, anchor: Mapping, ratio: float = 0.0,
                level: float = LEVEL) -> PairedTest | None:
  """``corrected_t_test`` of ``values[r] - anchor[r]`` over the replicates ``r`` in both.

  Args:
    values, anchor: replicate (a seed, or a (seed, fold) pair) -> value.
    ratio: n_test / n_train of one run (``holdout_ratio``).
    level: confidence level of the interval.

  Returns:
    None when no replicate is shared.
  """
  shared = [r for r in values if r in anchor]
  return corrected_t_test((float(values[r]) - float(anchor[r]) for r in shared), ratio, level)


def paired_difference(values: Mapping, anchor: Mapping, level: float = LEVEL,
                      ratio: float = 0.0) -> Interval | None:
  """The interval of ``paired_test`` (None when no replicate is shared)."""
  test = paired_test(values, anchor, ratio, level)
  return None if test is None else test.interval


def holm(p_values: Sequence[float]) -> list[float]:
  """Holm's (1979) step-down adjusted p-values, in the order given.

  With the m p-values sorted, p_(1) <= ... <= p_(m), the adjusted value of p_(i)
  is max_{j <= i} min(1, (m - j + 1) p_(j)); a hypothesis is rejected at
  family-wise level alpha exactly where its adjusted p-value is below alpha.
  """
  ps = [float(p) for p in p_values]
  for p in ps:
    if not 0.0 <= p <= 1.0:
      raise ValueError(f"p-value (={p}) must be in [0, 1]")
  m = len(ps)
  order = sorted(range(m), key=lambda i: ps[i])
  out, running = [0.0] * m, 0.0
  for rank, i in enumerate(order):
    running = max(running, min(1.0, (m - rank) * ps[i]))
    out[i] = running
  return out


def min_resolvable(se: float, df: float, alpha: float = ALPHA, power: float = POWER) -> float:
  """Smallest true difference resolved with probability ``power`` by a two-sided test at ``alpha``.

  (t_{1-alpha/2, df} + t_{power, df}) * se: the usual approximation that puts the
  test statistic's sampling distribution, centred on the true difference, on t with
  ``df`` degrees of freedom.
  """
  if not 0.0 < alpha < 1.0 or not 0.0 < power < 1.0:
    raise ValueError(f"alpha (={alpha}) and power (={power}) must be in (0, 1)")
  if se < 0:
    raise ValueError(f"se (={se}) must be >= 0")
  return (t_quantile(1.0 - alpha / 2.0, df) + t_quantile(power, df)) * se


def two_sample_difference(run: Iterable[float], reference: Iterable[float],
                          level: float = LEVEL) -> Interval | None:
  """Mean of ``run`` minus mean of ``reference``, with an interval for "same distribution".

  Both with two or more values: Welch's t-interval (Welch-Satterthwaite degrees
  of freedom). One value on one side: the other side's prediction interval for a
  new value, t_{n-1} * s * sqrt(1 + 1/n). One value on each: no interval.
  A zero spread on both sides gives a zero-width interval: only equality lies in it.
  """
  a, b = [float(v) for v in run], [float(v) for v in reference]
  if not a or not b:
    return None
  (ma, sa), (mb, sb) = _mean_std(a), _mean_std(b)
  diff, n = ma - mb, len(a) + len(b)
  if sa is not None and sb is not None:
    va, vb = sa * sa / len(a), sb * sb / len(b)
    if va + vb == 0.0:
      return Interval(diff, 0.0, n, level)
    df = (va * va / (len(a) - 1) if va else 0.0) + (vb * vb / (len(b) - 1) if vb else 0.0)
    df = (va + vb) ** 2 / df
    return Interval(diff, t_critical(df, level) * math.sqrt(va + vb), n, level)
  spread, m = (sa, len(a)) if sa is not None else (sb, len(b))
  if spread is None:
    return Interval(diff, None, n, level)
  return Interval(diff, t_critical(m - 1, level) * spread * math.sqrt(1.0 + 1.0 / m), n, level)
