"""The corrected resampled t-test, Holm's adjustment and the resolvable difference.

Checked against hand-worked values and closed forms (no scipy in the expectations),
an independently written Holm procedure, and the report rendered from fabricated
k-fold and fixed-split records.
"""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from sepconv.report import aggregate, anchor, pairs, stats, tables


def test_corrected_t_on_a_hand_worked_example():
  # d = 0.01, 0.03, 0.02, 0.04 from J = 4 runs of 5-fold CV (n_test/n_train = 1/4).
  # mean 0.025; deviations -0.015, 0.005, -0.005, 0.015; s^2 = 5e-4 / 3.
  # Corrected variance (1/4 + 1/4) s^2 = 2.5e-4 / 3; t^2 = 0.025^2 / (2.5e-4 / 3) = 7.5.
  # Uncorrected (fixed split, ratio 0): variance s^2 / 4 = 1.25e-4 / 3, t^2 = 15.
  d = [0.01, 0.03, 0.02, 0.04]
  test = stats.corrected_t_test(d, stats.holdout_ratio(5))
  assert test.ratio == 0.25 and test.df == 3 and test.n == 4
  assert test.mean == pytest.approx(0.025, rel=1e-15)
  assert test.se == pytest.approx(math.sqrt(2.5e-4 / 3), rel=1e-12)
  assert test.t == pytest.approx(math.sqrt(7.5), rel=1e-12)
  # Student t with 3 df in closed form: P(|T| > t) = 1 - (2/pi)(u / (1 + u^2) + atan u),
  # u = t / sqrt(3).
  u = math.sqrt(7.5 / 3)
  assert test.p == pytest.approx(1 - 2 / math.pi * (u / (1 + u * u) + math.atan(u)), rel=1e-10)
  # The interval uses the same standard error: t_{0.975, 3} = 3.182446 (published tables).
  assert test.half_width == pytest.approx(3.182446 * math.sqrt(2.5e-4 / 3), rel=1e-6)
  plain = stats.corrected_t_test(d)
  assert plain.t == pytest.approx(math.sqrt(15), rel=1e-12) and plain.p < test.p
  u = math.sqrt(15 / 3)
  assert plain.p == pytest.approx(1 - 2 / math.pi * (u / (1 + u * u) + math.atan(u)), rel=1e-10)


def test_holdout_ratio_and_degenerate_tests():
  assert stats.holdout_ratio(None) == 0.0 and stats.holdout_ratio(0) == 0.0
  assert stats.holdout_ratio(10) == pytest.approx(1 / 9)
  with pytest.raises(ValueError, match=r"folds \(=1\) must be 0 \(a fixed split\) or an integer k >= 2"):
    stats.holdout_ratio(1)
  with pytest.raises(ValueError, match=r"ratio \(=-1.0\)"):
    stats.corrected_t_test([1.0, 2.0], -1.0)
  one = stats.corrected_t_test([0.3])
  assert one.p is None and one.half_width is None and not one.interval.resolved
  assert stats.corrected_t_test([]) is None
  flat = stats.corrected_t_test([0.01, 0.01, 0.01], 0.25)
  assert flat.p == 0.0 and flat.half_width == 0.0
  assert stats.corrected_t_test([0.0, 0.0], 0.25).p == 1.0
  # Pairing by replicate: only shared keys count, in any key type.
  test = stats.paired_test({(0, 0): 0.5, (0, 1): 0.7, (1, 0): 0.9}, {(0, 1): 0.6, (0, 0): 0.45})
  assert test.n == 2 and test.mean == pytest.approx(0.075)


def _holm_reference(ps, alpha=0.05):
  """Textbook step-down: rejections, and adjusted values by the running maximum (numpy)."""
  ps = np.asarray(ps, dtype=float)
  m = len(ps)
  order = np.argsort(ps, kind="stable")
  rejected = np.zeros(m, bool)
  for i, j in enumerate(order):  # compare p_(i) with alpha / (m - i); stop at the first failure
    if ps[j] >= alpha / (m - i):
      break
    rejected[j] = True
  scaled = np.minimum(1.0, ps[order] * (m - np.arange(m)))
  adjusted = np.empty(m)
  adjusted[order] = np.maximum.accumulate(scaled)
  return rejected, adjusted


def test_holm_on_the_published_example():
  # Holm-Bonferroni method (Wikipedia's worked example): four hypotheses, alpha 0.05,
  # p = 0.01, 0.04, 0.03, 0.005: H4 and H1 are rejected, H3 and H2 are not. By hand,
  # adjusted: H4 4 x 0.005 = 0.02, H1 3 x 0.01 = 0.03, H3 2 x 0.03 = 0.06, H2 max(0.06, 0.04).
  adjusted = stats.holm([0.01, 0.04, 0.03, 0.005])
  assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02], rel=1e-12)
  assert [p < 0.05 for p in adjusted] == [True, False, False, True]
  assert stats.holm([]) == [] and stats.holm([0.7]) == [0.7]
  with pytest.raises(ValueError, match=r"p-value \(=1.5\) must be in \[0, 1\]"):
    stats.holm([0.1, 1.5])


@pytest.mark.parametrize("seed", range(20))
def test_holm_matches_a_reference_on_random_families(seed):
  rng = np.random.default_rng(seed)
  m = int(rng.integers(1, 30))
  ps = rng.uniform(0, 0.2, size=m) ** rng.uniform(0.5, 3)
  if m > 3:
    ps[1] = ps[0]  # ties
  rejected, adjusted = _holm_reference(ps)
  got = stats.holm(ps.tolist())
  np.testing.assert_allclose(got, adjusted, rtol=1e-12)
  assert [p < 0.05 for p in got] == rejected.tolist()
  assert all(a >= p for a, p in zip(got, ps))  # never below the raw value


@pytest.mark.parametrize("df,alpha", [(1, 0.05), (2, 0.05), (2, 0.0125)])
def test_min_resolvable_in_closed_form(df, alpha):
  # Student t quantiles in closed form: df 1 (Cauchy) tan(pi (p - 1/2)); df 2 (2p - 1) / sqrt(2p(1 - p)).
  q = {1: lambda p: math.tan(math.pi * (p - 0.5)),
       2: lambda p: (2 * p - 1) / math.sqrt(2 * p * (1 - p))}[df]
  se = 0.0123
  want = (q(1 - alpha / 2) + q(0.8)) * se
  assert stats.min_resolvable(se, df, alpha) == pytest.approx(want, rel=1e-9)
  assert stats.t_quantile(0.8, df) == pytest.approx(q(0.8), rel=1e-12)
  with pytest.raises(ValueError, match=r"power \(=1.0\)"):
    stats.min_resolvable(se, df, alpha, power=1.0)


def test_intervals_match_the_direct_formula():
  rng = np.random.default_rng(7)
  x = rng.normal(size=9)
  iv = stats.mean_interval(x.tolist(), level=0.9)
  # t_{0.95, 8} = 1.859548 (published tables)
  assert iv.half_width == pytest.approx(1.859548 * x.std(ddof=1) / 3, rel=1e-6)
  d = rng.normal(size=12)
  test = stats.corrected_t_test(d.tolist(), 1 / 3)
  se = math.sqrt((1 / 12 + 1 / 3) * d.var(ddof=1))
  # t_{0.975, 11} = 2.200985 (published tables)
  assert test.se == pytest.approx(se, rel=1e-12)
  assert test.half_width == pytest.approx(2.200985 * se, rel=1e-6)
  assert (test.interval.low, test.interval.high) == pytest.approx(
      (d.mean() - test.half_width, d.mean() + test.half_width), rel=1e-12)


# Fabricated k-fold records: 3 seeds x 5 folds; "planted" is 3 points below the anchor
# in every replicate, "same" equals the anchor, "noisy" scatters around it.
SEEDS, FOLDS = (0, 1, 2), 5


def _kfold_records(rng):
  base = {(s, f): float(rng.uniform(0.9, 0.97)) for s in SEEDS for f in range(FOLDS)}
  variants = {"standard": (lambda r: base[r], 1000), "planted": (lambda r: base[r] - 0.03 + rng.normal(0, 0.004), 300),
              "same": (lambda r: base[r], 200), "noisy": (lambda r: base[r] + rng.normal(0, 0.02), 100)}
  out = []
  for label, (acc, mult_adds) in variants.items():
    for s in SEEDS:
      for f in range(FOLDS):
        out.append({"kind": "train", "run_id": f"g/digits/{label}/seed={s}/fold={f}", "seed": s,
                    "config": {"conv": label, "label": label, "dataset": "digits", "model": "m",
                               "folds": FOLDS, "fold": f},
                    "metrics": {"test_accuracy": acc((s, f))}, "cost": {"mult_adds": mult_adds}})
  return out


def test_kfold_rows_pair_by_seed_and_fold_and_planted_difference_is_resolved():
  records = _kfold_records(np.random.default_rng(11))
  rows = aggregate.train_rows(records)
  assert sorted(r.label for r in rows) == ["noisy", "planted", "same", "standard"]
  assert all(r.seeds == 15 and r.folds == FOLDS for r in rows)
  assert aggregate.label_of({"run_id": "g/x/seed=1/fold=2", "config": {}}) == "g/x"
  by = {v.row.label: v for v in anchor.versus_anchor(rows)}
  acc = {label: {(r["seed"], r["config"]["fold"]): r["metrics"]["test_accuracy"] for r in records
                 if r["config"]["label"] == label} for label in by}
  raw = {}
  for label in ("planted", "same", "noisy"):
    d = np.array([acc[label][k] - acc["standard"][k] for k in acc["standard"]])
    se = math.sqrt((1 / 15 + 1 / 4) * d.var(ddof=1)) if d.var() else 0.0
    v = by[label]
    assert v.test.n == 15 and v.test.df == 14 and v.family == 3
    assert v.test.se == pytest.approx(se, rel=1e-9, abs=1e-15)
    raw[label] = v.test.p
  adjusted = _holm_reference([raw[k] for k in ("planted", "same", "noisy")])[1]
  assert [by[k].p_adjusted for k in ("planted", "same", "noisy")] == pytest.approx(adjusted.tolist())
  assert by["planted"].resolved and by["planted"].difference.high < 0
  assert not by["same"].resolved and by["same"].test.p == 1.0
  assert not by["noisy"].resolved
  mdd = by["noisy"].min_resolvable
  assert mdd == pytest.approx((stats.t_quantile(1 - 0.05 / 6, 14) + stats.t_quantile(0.8, 14))
                              * by["noisy"].test.se)

  table = tables.train_table(rows)
  md = tables.to_markdown(table)
  assert "Training results (mean ± 95% CI over runs, seeds × 5 folds)" in md
  assert "corrected resampled t-test (Nadeau & Bengio 2003)" in md and "n_test/n_train = 1/4 for k = 5" in md
  assert "Holm's step-down adjustment" in md and "resolved: p (Holm) < 0.05" in md
  assert "n = 15 runs, seeds × 5 folds (14 degrees of freedom; uncorrected" in md
  csv = tables.to_csv(table).splitlines()
  assert "p_value,p_holm,resolved,min_resolvable" in csv[0]
  tex = tables.to_latex(table)
  assert "$\\times$" in tex and "×" not in tex.split("\\begin{table}")[1]

  text = anchor.reading(rows)
  assert ("15 paired runs (5-fold cross-validation × seeds), corrected resampled t-test "
          "(Nadeau & Bengio 2003), Holm's adjustment over 3 comparisons") in text
  assert "1 of 3 variants is resolved from it (Holm-adjusted p < 0.05): planted (" in text
  median = statistics.median(v.min_resolvable for v in by.values() if v.min_resolvable is not None)
  assert f"Differences smaller than {100 * median:.2f} points cannot be told apart by this run" in text
  assert "at level 0.05/3, median over the 3 comparisons" in text


def test_fixed_split_records_still_render_as_paired_t_over_seeds():
  rng = np.random.default_rng(2)
  records = [r for r in _kfold_records(rng) if r["config"]["fold"] == 0]
  for r in records:
    r["config"] = {k: v for k, v in r["config"].items() if k not in ("folds", "fold")}
    r["run_id"] = r["run_id"].rsplit("/", 1)[0]
  rows = aggregate.train_rows(records)
  assert all(r.folds == 0 and r.seeds == 3 for r in rows)
  assert set(rows[0].by_replicate["test_accuracy"]) == {(0, None), (1, None), (2, None)}
  table = tables.train_table(rows)
  assert "paired t-test over seeds on a fixed split" in table.caption
  assert "Nadeau" not in table.caption and table.title.endswith("over seeds)")
  assert "paired t-test over seeds on a fixed split, Holm's adjustment over 3" in anchor.reading(rows)


def test_all_pairs_share_one_holm_family():
  records = _kfold_records(np.random.default_rng(11))
  rows = aggregate.train_rows(records)
  found = pairs.all_pairs(rows)
  assert len(found) == 6 and {p.family for p in found} == {6}
  raw = [p.test.p for p in found]
  np.testing.assert_allclose([p.p_adjusted for p in found], _holm_reference(raw)[1], rtol=1e-12)
  by = {(p.first.label, p.second.label): p for p in found}
  by.update({(b, a): p for (a, b), p in list(by.items())})
  assert by[("planted", "standard")].resolved and by[("planted", "same")].resolved
  assert not by[("same", "standard")].resolved
  p = by[("noisy", "standard")]
  sign = 1 if p.first.label == "noisy" else -1
  assert sign * p.test.mean == pytest.approx(
      anchor.versus_anchor(rows)[[r.label for r in rows].index("noisy")].test.mean)
  assert p.min_resolvable == pytest.approx(
      (stats.t_quantile(1 - 0.05 / 12, 14) + stats.t_quantile(0.8, 14)) * p.test.se)
  table = pairs.pairs_table(rows)
  md = tables.to_markdown(table)
  assert "corrected resampled t-test (Nadeau & Bengio 2003)" in md
  assert "Holm's step-down adjustment over all 6 pairs" in md and len(table.rows) == 6
  assert pairs.pairs_table(rows[:1]) is None
