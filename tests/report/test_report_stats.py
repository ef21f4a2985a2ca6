"""Intervals over seeds, the resolved/unresolved marks against the anchor, and reproduction checks.

Constructed records with known answers: a clear difference, a difference inside the
noise, a single seed; a reference shifted on purpose, and equal record sets.
"""

from __future__ import annotations

import math

import pytest

from sepconv.records import RECORDS_FILE
from sepconv.report import aggregate, anchor, compare, stats, tables


@pytest.mark.parametrize("df,want", [(1, 12.706205), (2, 4.302653), (3, 3.182446), (4, 2.776445),
                                     (10, 2.228139), (30, 2.042272), (1000, 1.962339)])
def test_t_quantile_matches_published_tables(df, want):
  assert stats.t_quantile(0.975, df) == pytest.approx(want, abs=1e-6)
  assert stats.t_quantile(0.025, df) == pytest.approx(-want, abs=1e-6)
  assert stats.t_cdf(stats.t_quantile(0.9, df), df) == pytest.approx(0.9, abs=1e-12)


def test_t_quantile_rejects_bad_arguments():
  with pytest.raises(ValueError, match=r"p \(=1.0\) must be in \(0, 1\)"):
    stats.t_quantile(1.0, 3)
  with pytest.raises(ValueError, match=r"df \(=0\) must be positive"):
    stats.t_quantile(0.9, 0)


def test_mean_interval_is_t_times_standard_error():
  iv = stats.mean_interval([1.0, 2.0, 3.0])
  assert iv.mean == 2.0 and iv.n == 3
  assert iv.half_width == pytest.approx(4.302653 * 1.0 / math.sqrt(3), rel=1e-6)
  assert stats.mean_interval([5.0]).half_width is None and not stats.mean_interval([5.0]).resolved
  assert stats.mean_interval([]) is None


def test_paired_difference_pairs_by_seed():
  # The same seed-to-seed swing in both: the paired difference is exactly 0.01 at every seed.
  d = stats.paired_difference({0: 0.51, 1: 0.71, 2: 0.61}, {2: 0.60, 0: 0.50, 1: 0.70, 3: 0.9})
  assert d.n == 3 and d.mean == pytest.approx(0.01) and d.half_width == pytest.approx(0.0, abs=1e-12)


def _train(conv, seed, acc, mult_adds=100, dataset="digits"):
  return {"kind": "train", "run_id": f"g/{conv}/seed={seed}", "seed": seed,
          "config": {"conv": conv, "label": conv, "dataset": dataset, "model": "m"},
          "metrics": {"test_accuracy": acc}, "cost": {"mult_adds": mult_adds},
          "provenance": {"jax": "0.7.2", "device_kind": "cpu", "cpu": "x"}}


ANCHOR = {0: 0.90, 1: 0.94, 2: 0.92, 3: 0.91}
CLEAR = {s: a - 0.05 + 0.001 * s for s, a in ANCHOR.items()}  # 5 points below, tiny spread
NOISE = {0: 0.93, 1: 0.91, 2: 0.95, 3: 0.88}  # the anchor's mean, a wide spread


def _records(seeds=(0, 1, 2, 3)):
  out = []
  for s in seeds:
    out += [_train("standard", s, ANCHOR[s], 1000), _train("clear", s, CLEAR[s], 100),
            _train("noise", s, NOISE[s], 200)]
  return out


def test_clear_difference_is_resolved_and_noise_is_not():
  rows = aggregate.train_rows(_records())
  by = {v.row.label: v for v in anchor.versus_anchor(rows)}
  assert by["standard"].difference is None and by["standard"].anchor is by["standard"].row
  clear = by["clear"].difference
  assert clear.mean == pytest.approx(-0.0485) and clear.resolved and clear.high < 0
  noise = by["noise"].difference
  assert abs(noise.mean) < noise.half_width and not by["noise"].resolved
  table = tables.train_table(rows)
  md = tables.to_markdown(table)
  marks = {row[0]: row[table.columns.index(next(c for c in table.columns if c.key == "resolved"))]
           for row in table.rows}
  assert marks == {"standard": "anchor", "clear": "yes", "noise": "no"}
  assert "n = 4 seeds (3 degrees of freedom)" in md and "−4.85 ± " in md
  assert "paired t-test over seeds on a fixed split" in md and "Holm's step-down" in md
  assert "p (Holm)" in md and "min. resolvable (pp)" in md
  tex = tables.to_latex(table)
  assert r"\caption{" in tex and "95\\% Student t-interval over n = 4 seeds" in tex
  assert "\\begin{table}" in tex and "\\toprule" in tex and "\\end{table}" in tex
  csv = tables.to_csv(table).splitlines()
  assert "test_accuracy_ci95" in csv[0] and "test_accuracy_vs_standard_ci95" in csv[0]
  text = anchor.reading(rows)
  assert ("1 of 2 variants is resolved from it (Holm-adjusted p < 0.05): clear (4.85 points "
          "below, 95% CI −5.06 to −4.64, adjusted p < 0.001, at 10% of the anchor's mult-adds)") in text
  assert "paired t-test over seeds on a fixed split, Holm's adjustment over 2 comparisons" in text
  assert "these runs do not order it" in text and "adjusted p = 1.000" in text
  assert "cannot be told apart by this run" in text


def test_a_single_seed_resolves_nothing_and_says_so():
  rows = aggregate.train_rows(_records(seeds=(0,)))
  assert all(not v.resolved for v in anchor.versus_anchor(rows))
  table = tables.train_table(rows)
  assert table.caption.startswith("One run per variant: no interval, differences unresolved")
  resolved = [c.key for c in table.columns].index("resolved")
  assert {row[resolved] for row in table.rows} == {"anchor", "no (one run)"}
  assert "no difference is resolved" in anchor.reading(rows)


def test_a_shifted_reference_is_moved_and_equal_records_reproduce():
  records = _records()
  same = compare.compare(records, [dict(r) for r in records])
  assert same.reproduced and all(x.verdict == "reproduced" for x in same.lines)
  assert same.provenance == {}
  shifted = [{**r, "metrics": {"test_accuracy": r["metrics"]["test_accuracy"] + 0.03}}
             if r["config"]["conv"] == "clear" else r for r in records]
  shifted = [{**r, "provenance": {**r["provenance"], "jax": "0.10.2"}} for r in shifted]
  c = compare.compare(shifted, records)
  verdicts = {x.label: x.verdict for x in c.lines}
  assert verdicts == {"standard": "reproduced", "clear": "moved", "noise": "reproduced"}
  assert not c.reproduced and c.provenance == {"jax": ("0.10.2", "0.7.2")}
  md = compare.to_markdown(c)
  assert "| moved" in md and "2 of 3 compared rows reproduced" in md
  assert "jax: 0.10.2 (reference) vs 0.7.2 (run)" in md
  assert "\\begin{tabular}" in compare.to_latex(c)


def test_one_seed_runs_are_judged_by_the_reference_spread():
  records = _records()
  one = [r for r in records if r["seed"] == 0]
  c = compare.compare(records, one)
  assert all(x.difference.half_width is not None for x in c.lines)
  assert {x.verdict for x in c.lines} == {"reproduced"}
  single = compare.compare(one, [{**r, "metrics": {"test_accuracy": 0.5}} for r in one])
  assert {x.verdict for x in single.lines} == {"no spread"}


def test_cli_compare_prints_markdown_or_latex_and_fails_in_one_line(tmp_path, capsys):
  from sepconv.cli.main import main
  from sepconv.records import append_record
  for name in ("ref", "run"):
    for r in _records():
      append_record(tmp_path / name / RECORDS_FILE, r)
  assert main(["report", "--compare", str(tmp_path / "ref"), str(tmp_path / "run")]) == 0
  assert "3 of 3 compared rows reproduced" in capsys.readouterr().out
  assert main(["report", "--compare", str(tmp_path / "ref"), str(tmp_path / "run"), "--latex"]) == 0
  assert "\\begin{tabular}" in capsys.readouterr().out
  assert main(["report", "--compare", str(tmp_path / "ref"), str(tmp_path / "none")]) != 0
  err = capsys.readouterr().err
  assert "no records at" in err and len(err.strip().splitlines()) == 1
