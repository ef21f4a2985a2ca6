"""Tables from aggregated rows, written as Markdown (GitHub), LaTeX (booktabs) and CSV.

A ``Table`` holds typed cells (text, ints, ``Stat``, ``stats.Interval``); each
writer formats them its own way from the same cells: Markdown and LaTeX show
"mean ± spread" rounded for reading, the spread being the std or, for columns
over seeds, the half-width of the 95% t-interval (omitted for a single seed);
CSV keeps full precision in separate mean, std (and ``_ci95`` half-width)
columns for further processing. A column appears only if at least one row has a
value for it. A table's caption follows the Markdown table and is the LaTeX
``table`` float's caption.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from collections.abc import Sequence

import tabulate

from sepconv.report import anchor as _anchor
from sepconv.report.aggregate import (BenchRow, CkaGroup, DecompositionRow, Stat, TrainRow,
                                      is_number, varying_fields)
from sepconv.report.stats import Interval

# How a column's numbers read: text, count (integers), percent (fractions shown
# x100), rate (images/s), ms, error (relative), ratio (in [0, 1]).
FORMATS = ("text", "count", "percent", "rate", "ms", "error", "ratio")
MISSING = {"md": "–", "tex": "--", "csv": ""}


@dataclasses.dataclass(frozen=True)
class Column:
  """A table column: header text, CSV name, number format, whether only CSV shows it, and
  the spread shown after a mean: 'std' or 'ci' (95% t-interval half-width)."""

  header: str
  key: str
  fmt: str = "text"
  csv_only: bool = False
  spread: str = "std"


@dataclasses.dataclass(frozen=True)
class Table:
  """A titled table of cells (str, int, float, Stat or None)."""

  slug: str
  title: str
  columns: tuple[Column, ...]
  rows: tuple[tuple, ...]
  caption: str | None = None


def _decimals(fmt: str, mean: float) -> int:
  if fmt == "percent":
    return 2
  if fmt == "error":
    return 4
  if fmt == "ratio":
    return 3
  if fmt == "count":
    return 0
  if mean == 0 or not math.isfinite(mean):
    return 2
  # About three significant digits, as timings and throughputs merit.
  return min(4, max(0, 2 - math.floor(math.log10(abs(mean)))))


def _number(value: float, decimals: int) -> str:
  if not math.isfinite(value):
    return str(value)
  return f"{value:,.{decimals}f}"


def format_cell(cell, fmt: str, style: str, spread: str = "std") -> str:
  """Human-readable text of one cell; ``style`` is 'md' or 'tex'."""
  if cell is None:
    return MISSING[style]
  pm = " ± " if style == "md" else r" $\pm$ "
  scale = 100.0 if fmt == "percent" else 1.0
  if isinstance(cell, Stat):
    mean = cell.mean * scale
    decimals = _decimals(fmt, mean)
    text = _number(mean, decimals)
    width = cell.ci if spread == "ci" else cell.std
    if width is not None and not (fmt == "count" and width == 0):
      text += pm + _number(width * scale, decimals)
    return text
  if isinstance(cell, Interval):
    mean = cell.mean * scale
    decimals = _decimals(fmt, mean)
    text = ("+" if mean > 0 else "−" if mean < 0 else "") + _number(abs(mean), decimals)
    if style == "tex":
      text = "$" + text.replace("−", "-") + "$"
    if cell.half_width is not None:
      text += pm + _number(cell.half_width * scale, decimals)
    return text
  if is_number(cell):
    if fmt == "text":
      return str(cell)
    return _number(float(cell) * scale, _decimals(fmt, float(cell) * scale))
  return str(cell)


def _escape_md(text: str) -> str:
  return text.replace("|", r"\|")


_TEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                "^": r"\textasciicircum{}"}


def escape_tex(text: str) -> str:
  """Escapes LaTeX special characters in plain text."""
  return "".join(_TEX_ESCAPES.get(ch, ch) for ch in text)


def _comment_block(lines: Sequence[str], prefix: str) -> str:
  return "".join(f"{prefix}{line}\n".replace(" \n", "\n") for line in lines)


def _for_reading(table: Table) -> Table:
  """The table without its CSV-only columns."""
  keep = [i for i, c in enumerate(table.columns) if not c.csv_only]
  return dataclasses.replace(table, columns=tuple(table.columns[i] for i in keep),
                             rows=tuple(tuple(row[i] for i in keep) for row in table.rows))


def to_markdown(table: Table, header: Sequence[str] = ()) -> str:
  """GitHub Markdown; ``header`` lines go first as an HTML comment."""
  table = _for_reading(table)
  body = tabulate.tabulate(
      [[_escape_md(format_cell(c, col.fmt, "md", col.spread)) for c, col in zip(row, table.columns)]
       for row in table.rows],
      headers=[_escape_md(c.header) for c in table.columns], tablefmt="github",
      disable_numparse=True,
      colalign=["left" if c.fmt == "text" else "right" for c in table.columns])
  comment = "<!--\n" + _comment_block(header, "  ") + "-->\n" if header else ""
  caption = f"\n{table.caption}\n" if table.caption else ""
  return f"{comment}**{table.title}**\n\n{body}\n{caption}"


def to_latex(table: Table, header: Sequence[str] = ()) -> str:
  """A booktabs ``tabular``; ``header`` lines as % comments.

  With a caption, the tabular sits in a ``table`` float whose ``\\caption`` is the
  title and caption, labelled ``tab:<slug>``; without one there is no float wrapper.
  """
  table = _for_reading(table)
  spec = "".join("l" if c.fmt == "text" else "r" for c in table.columns)
  lines = [_comment_block(header, "% ") + f"% {table.title}\n" if header else f"% {table.title}\n"]
  if table.caption:
    lines += ["\\begin{table}\n", "\\centering\n",
              f"\\caption{{{_tex_text(table.title)}. {_tex_text(table.caption)}}}\n",
              f"\\label{{tab:{table.slug}}}\n"]
  lines += [f"\\begin{{tabular}}{{{spec}}}\n", "\\toprule\n",
           " & ".join(_tex_text(c.header) for c in table.columns) + " \\\\\n", "\\midrule\n"]
  for row in table.rows:
    cells = []
    for cell, col in zip(row, table.columns):
      text = format_cell(cell, col.fmt, "tex", col.spread)
      cells.append(text if isinstance(cell, (Stat, Interval)) or (is_number(cell) and col.fmt != "text")
                   else escape_tex(text))
    lines.append(" & ".join(cells) + " \\\\\n")
  lines += ["\\bottomrule\n", "\\end{tabular}\n"]
  if table.caption:
    lines.append("\\end{table}\n")
  return "".join(lines)


def _tex_text(text: str) -> str:
  """Caption prose in LaTeX: escaped, with ± and Δ as math."""
  return escape_tex(text).replace("±", r"$\pm$").replace("Δ", r"$\Delta$").replace("−", "-")


def _csv_value(value, fmt: str = "text") -> str:
  if value is None:
    return ""
  if isinstance(value, float):
    if fmt == "count" and value.is_integer():
      return str(int(value))
    return repr(value)
  return str(value)


def to_csv(table: Table) -> str:
  """CSV with full-precision numbers.

  A Stat column becomes <key>_mean and <key>_std, plus <key>_ci95 (95% t-interval
  half-width) where its spread is the interval; an Interval column <key>_mean and
  <key>_ci95.
  """
  kinds = {}
  for i, col in enumerate(table.columns):
    if any(isinstance(row[i], Stat) for row in table.rows):
      kinds[i] = ("mean", "std", "ci95") if col.spread == "ci" else ("mean", "std")
    elif any(isinstance(row[i], Interval) for row in table.rows):
      kinds[i] = ("mean", "ci95")
  names = []
  for i, col in enumerate(table.columns):
    names += [f"{col.key}_{k}" for k in kinds[i]] if i in kinds else [col.key]
  buf = io.StringIO()
  writer = csv.writer(buf, lineterminator="\n")
  writer.writerow(names)
  for row in table.rows:
    out = []
    for i, (cell, col) in enumerate(zip(row, table.columns)):
      if i not in kinds:
        out.append(_csv_value(cell, col.fmt))
        continue
      for k in kinds[i]:
        if isinstance(cell, Stat):
          value = {"mean": cell.mean, "std": cell.std, "ci95": cell.ci}[k]
        elif isinstance(cell, Interval):
          value = {"mean": cell.mean, "std": None, "ci95": cell.half_width}[k]
        else:
          value = cell if k == "mean" else None
        out.append(_csv_value(value, col.fmt))
    writer.writerow(out)
  return buf.getvalue()


def _drop_empty(columns: list[Column], rows: list[list]) -> tuple[tuple[Column, ...], tuple]:
  keep = [i for i, c in enumerate(columns) if c.fmt == "text" and c.key in ("label", "impl", "layer")
          or any(row[i] is not None for row in rows)]
  return (tuple(columns[i] for i in keep), tuple(tuple(row[i] for i in keep) for row in rows))


def _context_columns(configs: Sequence[dict]) -> list[str]:
  """Dataset/model columns, shown only when they differ between rows."""
  return [k for k in ("dataset", "model") if k in varying_fields(configs)]


TRAIN_COLUMNS = (
    Column("test acc. (%)", "test_accuracy", "percent", spread="ci"),
    Column("Δ vs standard (pp)", "test_accuracy_vs_standard", "percent"),
    Column("resolved", "resolved"),
    Column("train acc. (%)", "train_accuracy", "percent", spread="ci"),
    Column("probe test acc. (%)", "probe_test_accuracy", "percent", spread="ci"),
    Column("params", "params", "count", spread="ci"),
    Column("params incl. BN", "params_with_bn", "count", spread="ci"),
    Column("mult-adds", "mult_adds", "count", spread="ci"),
    Column("train img/s", "train_images_per_s", "rate", spread="ci"),
    Column("infer img/s", "infer_images_per_s", "rate", spread="ci"),
    Column("train time (s)", "train_seconds", "rate", spread="ci"),
)


def _resolved(v: _anchor.Versus) -> str | None:
  """The resolved mark: 'anchor', 'yes', 'no', 'no (one seed)'; None without an anchor."""
  if v.anchor is None:
    return None
  if v.anchor is v.row:
    return "anchor"
  if v.difference is None or v.difference.half_width is None:
    return "no (one seed)"
  return "yes" if v.resolved else "no"


def train_table(rows: Sequence[TrainRow]) -> Table | None:
  """Accuracy, cost and measured throughput per configuration, mean ± 95% CI over seeds.

  Each row's test accuracy is compared with the standard anchor's, paired by seed
  (``sepconv.report.anchor``): the difference with its interval, and whether it is
  resolved. The caption states n and the interval.
  """
  if not rows:
    return None
  context = _context_columns([r.config for r in rows])
  columns = [Column(k, k) for k in context] + [Column("label", "label"), Column("seeds", "seeds", "count")]
  # Other numeric metrics (e.g. test loss) travel in the CSV only.
  extra = sorted({k for r in rows for k in r.extra})
  columns += list(TRAIN_COLUMNS) + [Column(k, k, "rate", csv_only=True, spread="ci") for k in extra]
  versus = _anchor.versus_anchor(rows)
  derived = {"test_accuracy_vs_standard": lambda v: v.difference, "resolved": _resolved}
  cells = [[r.config.get(k) for k in context] + [r.label, r.seeds]
           + [derived[c.key](v) if c.key in derived else r.stats.get(c.key) for c in TRAIN_COLUMNS]
           + [r.extra.get(k) for k in extra]
           for r, v in zip(rows, versus)]
  cols, body = _drop_empty(columns, cells)
  return Table("train", "Training results (mean ± 95% CI over seeds)", cols, body,
               caption=_anchor.caption(rows))


def effective_rank_table(rows: Sequence[TrainRow]) -> Table | None:
  """Effective rank of each recorded layer per configuration."""
  rows = [r for r in rows if r.effective_rank]
  if not rows:
    return None
  layers = list(dict.fromkeys(layer for r in rows for layer in r.effective_rank))
  columns = [Column("label", "label"), Column("seeds", "seeds", "count")]
  columns += [Column(layer, f"effective_rank_{layer}", "rate", spread="ci") for layer in layers]
  cells = [[r.label, r.seeds] + [r.effective_rank.get(layer) for layer in layers] for r in rows]
  cols, body = _drop_empty(columns, cells)
  lo, hi = _anchor.seed_counts(rows)
  caption = ("One seed: no interval." if hi < 2 else
             f"Mean ± half-width of the 95% Student t-interval over n = "
             f"{lo if lo == hi else f'{lo} to {hi}'} seeds.")
  return Table("effective_rank", "Effective rank of features (Roy & Vetterli 2007)", cols, body,
               caption=caption)


BENCH_COLUMNS = (
    Column("mult-adds", "mult_adds", "count"),
    Column("fwd (ms)", "fwd_ms", "ms"),
    Column("infer (ms)", "infer_ms", "ms"),
    Column("fwd+bwd (ms)", "fwdbwd_ms", "ms"),
    Column("train step (ms)", "train_step_ms", "ms"),
    Column("infer img/s", "infer_images_per_s", "rate"),
    Column("fwd+bwd img/s", "fwdbwd_images_per_s", "rate"),
    Column("train img/s", "train_images_per_s", "rate"),
)


def bench_table(rows: Sequence[BenchRow]) -> Table | None:
  """Measured timings and throughput per configuration and implementation."""
  if not rows:
    return None
  context = _context_columns([r.config for r in rows])
  columns = [Column(k, k) for k in context] + [Column("label", "label"), Column("impl", "impl"),
                                               Column("runs", "runs", "count")]
  columns += list(BENCH_COLUMNS)
  cells = [[r.config.get(k) for k in context]
           + [r.label, r.impl, max((s.n for s in r.stats.values()), default=0)]
           + [r.stats.get(c.key) for c in BENCH_COLUMNS] for r in rows]
  cols, body = _drop_empty(columns, cells)
  return Table("bench", "Measured speed (mean ± std over runs)", cols, body)


def decomposition_table(rows: Sequence[DecompositionRow]) -> Table | None:
  """Relative Frobenius error of the best projection at each spectrum point."""
  if not rows:
    return None
  multi = len({r.source for r in rows}) > 1
  columns = ([Column("source", "source")] if multi else []) + [
      Column("layer", "layer"), Column("group size", "group_size", "count"),
      Column("depth multiplier", "depth_multiplier", "count"),
      Column("pointwise", "pointwise"), Column("n", "n", "count"),
      Column("rel. error", "rel_error", "error")]
  cells = [([r.source] if multi else [])
           + [r.layer, r.group_size, r.depth_multiplier,
              None if r.pointwise is None else ("yes" if r.pointwise else "no"),
              r.error.n, r.error] for r in rows]
  cols, body = _drop_empty(columns, cells)
  return Table("decomposition", "Projection error of a standard conv onto the spectrum "
               "(relative Frobenius norm)", cols, body)


def cka_table(group: CkaGroup, slug: str) -> Table:
  """A CKA matrix as a table, rows and columns named by ``group.names``."""
  columns = [Column("", "name")] + [Column(name, name, "ratio") for name in group.names]
  cells = [[name] + [v for v in row] for name, row in zip(group.names, group.mean)]
  return Table(slug, f"Linear CKA: {group.label} (mean of {group.n} record"
               f"{'s' if group.n != 1 else ''})", tuple(columns), tuple(tuple(r) for r in cells))
