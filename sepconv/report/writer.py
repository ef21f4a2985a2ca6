"""The one table writer: Markdown (GitHub), LaTeX (booktabs) and CSV, for every report.

Two shapes of table go through here. A ``Table`` holds typed cells (text, ints,
``Stat``, ``stats.Interval``); each writer formats them its own way from the same
cells: Markdown and LaTeX show "mean ± spread" rounded for reading, the spread being
the std or, for columns over seeds, the half-width of the 95% t-interval (omitted for a
single seed); CSV keeps full precision in separate mean, std (and ``_ci95`` half-width)
columns for further processing. A table's caption follows the Markdown table and is
the LaTeX ``table`` float's caption.

A benchmark document (``Section``) holds tables of cells already written as text (the
benchmark reports format their numbers with ``sig``), each section headed by its
provenance lines; ``sections_markdown``, ``sections_latex`` and ``rows_csv`` write it.
Output depends only on the cells: a rerun is byte-identical.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import tabulate

from sepconv.report.aggregate import Stat, is_number
from sepconv.report.stats import Interval

# How a column's numbers read: text, count (integers), percent (fractions shown
# x100), rate (images/s), ms, error (relative), ratio (in [0, 1]), p (a p-value:
# three decimals, or "< 0.001").
FORMATS = ("text", "count", "percent", "rate", "ms", "error", "ratio", "p")
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
    if fmt == "p":
      return ("< 0.001" if style == "md" else "$<$ 0.001") if cell < 0.001 else f"{cell:.3f}"
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
  body = _grid(
      [[_escape_md(format_cell(c, col.fmt, "md", col.spread)) for c, col in zip(row, table.columns)]
       for row in table.rows],
      [_escape_md(c.header) for c in table.columns], "github",
      ["left" if c.fmt == "text" else "right" for c in table.columns])
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
  return (escape_tex(text).replace("±", r"$\pm$").replace("Δ", r"$\Delta$").replace("−", "-")
          .replace("×", r"$\times$"))


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


def _grid(rows: Sequence[Sequence[str]], headers: Sequence[str], tablefmt: str,
          colalign: Sequence[str]) -> str:
  """Cells already written as text, laid out by tabulate (numbers never re-parsed)."""
  return tabulate.tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True,
                           colalign=colalign)


def sig(value: float | None, digits: int = 3) -> str:
  """``digits`` significant figures in positional notation; whole numbers past that."""
  if value is None:
    return ""
  if abs(value) >= 10**digits:
    return f"{value:.0f}"
  text = np.format_float_positional(value, precision=digits, unique=False, fractional=False,
                                    trim="k")
  return text.rstrip(".")


@dataclasses.dataclass(frozen=True)
class Section:
  """A benchmark document's section: its title, provenance lines and text tables."""

  title: str
  provenance: tuple[str, ...]
  grids: tuple[tuple[Sequence[str], Sequence[Sequence[str]]], ...]  # (headers, rows)


def sections_markdown(title: str, sections: Sequence[Section], legend: str | None = None) -> str:
  """A Markdown document: title, legend, then each section with its provenance and tables."""
  parts = [f"# {title}", "", "Generated by `sepconv report` from raw records; do not edit.", ""]
  if legend:
    parts += [legend, ""]
  for section in sections:
    parts += [f"## {section.title}", ""]
    parts += [f"- {line}" for line in section.provenance] + [""]
    for headers, rows in section.grids:
      parts += [_grid(rows, headers, "github", ("right",) * len(headers)), ""]
  return "\n".join(parts)


def sections_latex(title: str, sections: Sequence[Section]) -> str:
  """The same document as LaTeX: % comments, then booktabs tabulars."""
  parts = [f"% {title}", "% Generated by `sepconv report` from raw records; do not edit.", ""]
  for section in sections:
    parts += [f"% {section.title}"] + [f"% {line}" for line in section.provenance]
    for headers, rows in section.grids:
      parts += [_grid(rows, headers, "latex_booktabs", ("right",) * len(headers)), ""]
  return "\n".join(parts)


def rows_csv(columns: Sequence[str], rows: Iterable[dict]) -> str:
  """CSV of ``rows`` (dicts) in ``columns``: floats to 6 significant digits, None empty."""
  buf = io.StringIO()
  writer = csv.writer(buf, lineterminator="\n")
  writer.writerow(columns)
  for row in rows:
    writer.writerow(["" if row.get(c) is None else
                     (f"{row[c]:.6g}" if isinstance(row[c], float) else row[c]) for c in columns])
  return buf.getvalue()


def write_text(path: Path, text: str) -> Path:
  """Writes ``text`` (ending in one newline) to ``path`` as UTF-8."""
  path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
  return path
