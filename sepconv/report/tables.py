"""The report's tables, built from aggregated rows (written by ``sepconv.report.writer``).

Each builder turns rows into a ``Table`` of typed cells; the writer formats them as
Markdown, LaTeX and CSV. A column appears only if at least one row has a value for it.
The training and speed tables show the registered metrics (``sepconv.records.metrics``)
in their layouts' order, each with its registered header and format.
"""

from __future__ import annotations

from collections.abc import Sequence

from sepconv.records import metrics as _metrics
from sepconv.report import anchor as _anchor
from sepconv.report.aggregate import (BenchRow, CkaGroup, DecompositionRow, TrainRow,
                                      varying_fields)
from sepconv.report.writer import Column, Table, to_csv, to_latex, to_markdown

__all__ = ["Column", "Table", "bench_table", "cka_table", "decomposition_table",
           "effective_rank_table", "to_csv", "to_latex", "to_markdown", "train_table"]


def _drop_empty(columns: list[Column], rows: list[list]) -> tuple[tuple[Column, ...], tuple]:
  keep = [i for i, c in enumerate(columns) if c.fmt == "text" and c.key in ("label", "impl", "layer")
          or any(row[i] is not None for row in rows)]
  return (tuple(columns[i] for i in keep), tuple(tuple(row[i] for i in keep) for row in rows))


def _context_columns(configs: Sequence[dict]) -> list[str]:
  """Dataset/model columns, shown only when they differ between rows."""
  return [k for k in ("dataset", "model") if k in varying_fields(configs)]


def _metric_column(name: str, spread: str = "std") -> Column:
  m = _metrics.metric(name)
  return Column(m.header, m.name, m.fmt, spread=spread)


def _train_columns() -> tuple[Column, ...]:
  """The registered training metrics, the anchor comparison right after the primary one."""
  out = []
  for name in _metrics.TRAIN_TABLE:
    out.append(_metric_column(name, "ci"))
    if name == _anchor.METRIC:
      out += [Column("Δ vs standard (pp)", f"{name}_vs_standard", "percent"),
              Column("p", "p_value", "p"), Column("p (Holm)", "p_holm", "p"),
              Column("resolved", "resolved"),
              Column("min. resolvable (pp)", "min_resolvable", "percent")]
  return tuple(out)


def _resolved(v: _anchor.Versus) -> str | None:
  """The resolved mark: 'anchor', 'yes', 'no', 'no (one run)'; None without an anchor."""
  if v.anchor is None:
    return None
  if v.anchor is v.row:
    return "anchor"
  if v.p_adjusted is None:
    return "no (one run)"
  return "yes" if v.resolved else "no"


# Cells derived from the comparison with the anchor, by column key.
_VERSUS_CELLS = {f"{_anchor.METRIC}_vs_standard": lambda v: v.difference,
                 "p_value": lambda v: None if v.test is None else v.test.p,
                 "p_holm": lambda v: v.p_adjusted, "resolved": _resolved,
                 "min_resolvable": lambda v: v.min_resolvable}


def train_table(rows: Sequence[TrainRow]) -> Table | None:
  """Accuracy, cost and measured throughput per configuration, mean ± 95% CI over runs.

  Each row's test accuracy is compared with the standard anchor's, paired by
  replicate (``sepconv.report.anchor``): the difference with its interval, the raw
  and Holm-adjusted p-values, whether it is resolved, and the smallest difference
  resolvable at 80% power. The caption names n, the test and the adjustment.
  """
  if not rows:
    return None
  context = _context_columns([r.config for r in rows])
  columns = [Column(k, k) for k in context] + [Column("label", "label"), Column("runs", "runs", "count")]
  # Other numeric metrics (e.g. test loss) travel in the CSV only.
  extra = sorted({k for r in rows for k in r.extra})
  metric_columns = _train_columns()
  columns += list(metric_columns) + [Column(k, k, "rate", csv_only=True, spread="ci") for k in extra]
  versus = _anchor.versus_anchor(rows)
  derived = _VERSUS_CELLS
  cells = [[r.config.get(k) for k in context] + [r.label, r.seeds]
           + [derived[c.key](v) if c.key in derived else r.stats.get(c.key) for c in metric_columns]
           + [r.extra.get(k) for k in extra]
           for r, v in zip(rows, versus)]
  cols, body = _drop_empty(columns, cells)
  return Table("train", f"Training results (mean ± 95% CI over {_anchor.design(rows)})", cols, body,
               caption=_anchor.caption(rows))


def effective_rank_table(rows: Sequence[TrainRow]) -> Table | None:
  """Effective rank of each recorded layer per configuration."""
  rows = [r for r in rows if r.effective_rank]
  if not rows:
    return None
  layers = list(dict.fromkeys(layer for r in rows for layer in r.effective_rank))
  columns = [Column("label", "label"), Column("runs", "runs", "count")]
  columns += [Column(layer, f"effective_rank_{layer}", "rate", spread="ci") for layer in layers]
  cells = [[r.label, r.seeds] + [r.effective_rank.get(layer) for layer in layers] for r in rows]
  cols, body = _drop_empty(columns, cells)
  lo, hi = _anchor.seed_counts(rows)
  caption = ("One run: no interval." if hi < 2 else
             f"Mean ± half-width of the 95% Student t-interval over n = "
             f"{lo if lo == hi else f'{lo} to {hi}'} {_anchor.design(rows)}.")
  return Table("effective_rank", "Effective rank of features (Roy & Vetterli 2007)", cols, body,
               caption=caption)




def bench_table(rows: Sequence[BenchRow]) -> Table | None:
  """Measured timings and throughput per configuration and implementation."""
  if not rows:
    return None
  context = _context_columns([r.config for r in rows])
  columns = [Column(k, k) for k in context] + [Column("label", "label"), Column("impl", "impl"),
                                               Column("runs", "runs", "count")]
  metric_columns = [_metric_column(name) for name in _metrics.BENCH_TABLE]
  columns += metric_columns
  cells = [[r.config.get(k) for k in context]
           + [r.label, r.impl, max((s.n for s in r.stats.values()), default=0)]
           + [r.stats.get(c.key) for c in metric_columns] for r in rows]
  cols, body = _drop_empty(columns, cells)
  return Table("bench", "Measured speed (mean ± std over runs)", cols, body)


def _series(pointwise: bool | None, multiplier: int | None) -> tuple[str, str]:
  """(header, key) of one spectrum family's column in the projection-error table."""
  if not pointwise:
    return ("grouped", "grouped") if pointwise is False else ("?", "unknown")
  if multiplier is None:
    return "+ pw", "pw"
  return f"+ pw, m={multiplier}", f"pw_m{multiplier}"


def decomposition_table(rows: Sequence[DecompositionRow]) -> Table | None:
  """Relative Frobenius error of the best projection at each spectrum point, pivoted.

  One block of rows per layer (and source model, where there are several), group
  size down; across, plain grouped conv and grouped + pointwise at each depth
  multiplier m. Each cell is the mean (± std) over the records.
  """
  if not rows:
    return None
  multi = len({r.source for r in rows}) > 1
  series = sorted({(r.pointwise, r.depth_multiplier) for r in rows},
                  key=lambda s: (s[0] is not False, s[0] is None,
                                 -1 if s[1] is None else s[1]))
  columns = ([Column("source", "source")] if multi else []) + [
      Column("layer", "layer"), Column("group size", "group_size", "count"),
      Column("n", "n", "count")]
  columns += [Column(*_series(pw, m), "error") for pw, m in series]
  cells: dict[tuple, dict] = {}
  for r in rows:
    cells.setdefault((r.source, r.layer), {}).setdefault(r.group_size, {})[
        (r.pointwise, r.depth_multiplier)] = r.error
  body = []
  for (source, layer), by_size in cells.items():  # rows come sorted by source and layer
    for gs in sorted(by_size, key=lambda g: (0, g) if isinstance(g, int) else (1, 0)):
      by = by_size[gs]
      body.append(([source] if multi else []) + [layer, gs, max(e.n for e in by.values())]
                  + [by.get(s) for s in series])
  if all(b[2 + multi] == 1 for b in body):  # one record each: no count to show
    body = [b[:2 + multi] + [None] + b[3 + multi:] for b in body]
  cols, out = _drop_empty(columns, body)
  return Table("decomposition", "Projection error of a standard conv onto the spectrum "
               "(relative Frobenius norm)", cols, out,
               caption="One block per layer, group size (channels per group) down; across, plain "
               "grouped conv and grouped + pointwise at depth multiplier m. Mean ± std over "
               "the n records where there are several.")


def cka_table(group: CkaGroup, slug: str) -> Table:
  """A CKA matrix as a table, rows and columns named by ``group.names``."""
  columns = [Column("", "name")] + [Column(name, name, "ratio") for name in group.names]
  cells = [[name] + [v for v in row] for name, row in zip(group.names, group.mean)]
  return Table(slug, f"Linear CKA: {group.label} (mean of {group.n} record"
               f"{'s' if group.n != 1 else ''})", tuple(columns), tuple(tuple(r) for r in cells))
