"""Confidence intervals over seeds: Student t quantiles, mean intervals, paired differences.

Plain Python, no SciPy. The t quantile inverts the t distribution's CDF, written
with the regularized incomplete beta function (continued fraction, Lentz's method),
by bisection to double precision, so ``t_quantile(0.975, 2)`` is 4.3027 and
``t_quantile(0.975, 30)`` is 2.0423 as in any table.

* ``mean_interval``: mean of n values and the half-width of its two-sided
  t-interval, t_{(1+level)/2, n-1} * s / sqrt(n); none for one value.
* ``paired_difference``: a variant against the anchor seed by seed (both trained
  on the same data split with the same seed), the mean of the per-seed
  differences and its t-interval; ``resolved`` is whether that interval excludes
  zero. With one common seed nothing is resolved.
* ``two_sample_difference``: two independent sets of values (a reference and a
  rerun): Welch's interval for the difference of means; with one value on one
  side, the prediction interval of a new value around the other side's mean.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping

LEVEL = 0.95


def _betacf(a: float, b: float, x: float) -> float:
  """Continued fraction of the incomplete beta function (Numerical Recipes, Lentz)."""
  tiny, eps = 1e-300, 1e-16
  c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
  d = 1.0 / (d if abs(d) > tiny else tiny)
  h = d
  for m in range(1, 400):
    m2 = 2 * m
    aa = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2))
    d = 1.0 + aa * d
    d = 1.0 / (d if abs(d) > tiny else tiny)
    c = 1.0 + aa / c
    c = c if abs(c) > tiny else tiny
    h *= d * c
    aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0))
    d = 1.0 + aa * d
    d = 1.0 / (d if abs(d) > tiny else tiny)
    c = 1.0 + aa / c
    c = c if abs(c) > tiny else tiny
    delta = d * c
    h *= delta
    if abs(delta - 1.0) < eps:
      break
  return h


def regularized_beta(a: float, b: float, x: float) -> float:
  """I_x(a, b), the regularized incomplete beta function, for x in [0, 1]."""
  if not 0.0 <= x <= 1.0:
    raise ValueError(f"x (={x}) must be in [0, 1]")
  if x in (0.0, 1.0):
    return x
  log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
               + a * math.log(x) + b * math.log1p(-x))
  if x < (a + 1.0) / (a + b + 2.0):
    return math.exp(log_front) * _betacf(a, b, x) / a
  return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_cdf(x: float, df: float) -> float:
  """P(T <= x) for Student's t with ``df`` degrees of freedom."""
  if df <= 0:
    raise ValueError(f"df (={df}) must be positive")
  tail = 0.5 * regularized_beta(df / 2.0, 0.5, df / (df + x * x))
  return 1.0 - tail if x > 0 else tail


def t_quantile(p: float, df: float) -> float:
  """The ``p`` quantile of Student's t with ``df`` degrees of freedom."""
  if not 0.0 < p < 1.0:
    raise ValueError(f"p (={p}) must be in (0, 1)")
  if df <= 0:
    raise ValueError(f"df (={df}) must be positive")
  if p < 0.5:
    return -t_quantile(1.0 - p, df)
  if p == 0.5:
    return 0.0
  lo, hi = 0.0, 1.0
  while t_cdf(hi, df) < p:
    lo, hi = hi, 2.0 * hi
  for _ in range(200):
    mid = 0.5 * (lo + hi)
    if mid in (lo, hi):
      break
    if t_cdf(mid, df) < p:
      lo = mid
    else:
      hi = mid
  return 0.5 * (lo + hi)


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


def paired_difference(values: Mapping, anchor: Mapping, level: float = LEVEL) -> Interval | None:
  """Mean of ``values[s] - anchor[s]`` over the seeds ``s`` in both, with its t-interval.

  Args:
    values, anchor: seed -> value, for the variant and the anchor.
    level: confidence level of the interval.

  Returns:
    None when no seed is shared; an interval with no half-width for one.
  """
  seeds = [s for s in values if s in anchor]
  return mean_interval((float(values[s]) - float(anchor[s]) for s in seeds), level)


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
    df = (va + vb) ** 2 / ((va * va / (len(a) - 1) if va else 0.0)
                           + (vb * vb / (len(b) - 1) if vb else 0.0))
    return Interval(diff, t_critical(df, level) * math.sqrt(va + vb), n, level)
  spread, m = (sa, len(a)) if sa is not None else (sb, len(b))
  if spread is None:
    return Interval(diff, None, n, level)
  return Interval(diff, t_critical(m - 1, level) * spread * math.sqrt(1.0 + 1.0 / m), n, level)
