"""Aggregation and table formatting: statistics, number formats, escaping."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sepconv.report.aggregate import Stat, group_records, label_of
from sepconv.report.writer import Column, Table, escape_tex, format_cell, to_csv, to_latex, to_markdown


def test_stat_is_mean_and_sample_std_of_numbers_only():
  values = np.random.default_rng(0).uniform(size=5)
  stat = Stat.of([*values, None, "x", True])
  assert stat.n == 5
  assert stat.mean == pytest.approx(values.mean(), rel=1e-15)
  assert stat.std == pytest.approx(values.std(ddof=1), rel=1e-12)
  assert Stat.of([values[0]]).std is None and Stat.of([None]) is None


@pytest.mark.parametrize("fmt,mean,std,want_md", [
    ("percent", 0.971234, 0.0031, "97.12 ± 0.31"),
    ("count", 4210088.0, 0.0, "4,210,088"),
    ("rate", 12345.6, 78.9, "12,346 ± 79"),
    ("rate", 45.678, 1.234, "45.7 ± 1.2"),
    ("ms", 0.12345, None, "0.123"),
    ("error", 0.5, 0.01, "0.5000 ± 0.0100"),
])
def test_number_formats(fmt, mean, std, want_md):
  stat = Stat(mean, std, 1 if std is None else 2)
  assert format_cell(stat, fmt, "md") == want_md
  assert format_cell(stat, fmt, "tex") == want_md.replace(" ± ", r" $\pm$ ")


def test_missing_and_non_finite_cells():
  assert format_cell(None, "rate", "md") == "–" and format_cell(None, "rate", "tex") == "--"
  assert format_cell(Stat(math.nan, None, 1), "percent", "md") == "nan"


def test_tex_escaping_and_booktabs():
  assert escape_tex("g_1 & 50% {x}") == r"g\_1 \& 50\% \{x\}"
  table = Table("t", "T", (Column("label", "label"), Column("acc (%)", "acc", "percent")),
                (("a_b", Stat(0.5, 0.1, 2)),))
  tex = to_latex(table, ["line one"])
  assert tex.startswith("% line one\n% T\n\\begin{tabular}{lr}\n\\toprule\n")
  assert "a\\_b & 50.00 $\\pm$ 10.00 \\\\" in tex and tex.endswith("\\bottomrule\n\\end{tabular}\n")
  md = to_markdown(Table("t", "T", (Column("label", "label"),), (("a|b",),)))
  assert r"a\|b" in md


def test_csv_splits_stats_and_keeps_full_precision():
  value = float(np.random.default_rng(1).uniform())
  table = Table("t", "T", (Column("label", "label"), Column("x", "x", "rate"), Column("n", "n", "count")),
                (("a", Stat(value, None, 1), 3), ("b", None, 4)))
  lines = to_csv(table).splitlines()
  assert lines == ["label,x_mean,x_std,n", f"a,{value!r},,3", "b,,,4"]


def test_labels_and_grouping():
  recs = [{"kind": "train", "config": {"conv": "spec", "seed": s}, "run_id": f"e/spec/seed={s}"} for s in range(3)]
  groups = group_records(recs)
  assert len(groups) == 1 and len(groups[0].records) == 3 and groups[0].label == "spec"
  assert label_of({"run_id": "e/x/seed=4", "config": {}}) == "e/x"


def _decomposition_records():
  """Two records of two layers; error = 1 / (g * m) (grouped: 1 / (2 g)), second record + 0.01."""
  out = []
  for rep in range(2):
    for layer, sizes in (("block3/spatial", (1, 2, 4)), ("block5/spatial", (1, 2, 4, 8))):
      errors = [{"group_size": g, "depth_multiplier": None, "pointwise": False,
                 "rel_error": 1 / (2 * g) + 0.01 * rep} for g in sizes]
      errors += [{"group_size": g, "depth_multiplier": m, "pointwise": True,
                  "rel_error": 1 / (g * m) + 0.01 * rep} for m in (4, 1, 2) for g in sizes]
      out.append({"kind": "decomposition", "config": {"conv": "standard", "model": "m"}, "seed": rep,
                  "decomposition": {"layer": layer, "errors": errors}})
  return out


def test_projection_error_table_is_pivoted_by_layer():
  from sepconv.report import aggregate, tables
  table = tables.decomposition_table(aggregate.decomposition_rows(_decomposition_records()))
  assert [c.header for c in table.columns] == ["layer", "group size", "n", "grouped", "+ pw, m=1",
                                               "+ pw, m=2", "+ pw, m=4"]
  assert [(r[0], r[1]) for r in table.rows] == [("block3/spatial", g) for g in (1, 2, 4)] + [
      ("block5/spatial", g) for g in (1, 2, 4, 8)]
  for layer, g, n, grouped, *pw in table.rows:
    assert n == 2
    assert grouped.mean == pytest.approx(1 / (2 * g) + 0.005, rel=1e-12)
    assert grouped.std == pytest.approx(0.01 / math.sqrt(2), rel=1e-9)
    assert [s.mean for s in pw] == pytest.approx([1 / (g * m) + 0.005 for m in (1, 2, 4)], rel=1e-12)
  lines = to_csv(table).splitlines()
  assert lines[0] == ("layer,group_size,n,grouped_mean,grouped_std,pw_m1_mean,pw_m1_std,"
                      "pw_m2_mean,pw_m2_std,pw_m4_mean,pw_m4_std")
  assert len(lines) == 1 + 7
  md = to_markdown(table)
  assert "| block5/spatial |            8 |   2 | 0.0675 ± 0.0071 |" in md
  assert "One block per layer, group size (channels per group) down" in md
  single = [r for r in _decomposition_records() if r["seed"] == 0]
  table = tables.decomposition_table(aggregate.decomposition_rows(single))
  assert "n" not in [c.header for c in table.columns]  # one record per cell: no count column
  assert table.rows[0][:3] == ("block3/spatial", 1, Stat(0.5, None, 1))
