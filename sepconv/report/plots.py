"""Plots from aggregated rows, saved as PNG and PDF with matplotlib's Agg canvas.

Figures are built with the object API (``Figure`` + ``FigureCanvasAgg``), never
pyplot, so rendering touches no global backend state and works headless. Output
is byte-reproducible: matplotlib's default style is applied regardless of the
user's matplotlibrc, dpi is fixed, and the metadata that would carry a version
or timestamp is cleared (PNG 'Software'; PDF 'Creator', 'Producer',
'CreationDate'). PDFs embed TrueType (Type 42) fonts, since many paper
venues reject Type 3.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import matplotlib.style
import matplotlib.ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from sepconv import spectrum
from sepconv.records import metrics
from sepconv.report.labels import place_labels
from sepconv.report.aggregate import BenchRow, CkaGroup, DecompositionRow, TrainRow

DPI = 200
PNG_METADATA = {"Software": None}
PDF_METADATA = {"Creator": None, "Producer": None, "CreationDate": None}
# One column of a two-column paper, in inches; panels stack downwards.
COLUMN_WIDTH = 3.4
PANEL_HEIGHT = 2.3
FONT_SIZE = 7
# One colour per family across every plot; the anchor is black.
FAMILY_COLOURS = {"standard": "black", "grouped + pw": "tab:blue", "multiplier + pw": "tab:green",
                  "grouped": "tab:orange"}
OTHER_COLOURS = ("tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:red")
# One line style and marker per implementation, in the order the rows name them.
IMPL_STYLES = (("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"))
ANCHOR = "standard"


def family_of(config: dict) -> str:
  """Short family name for legends: 'standard', 'grouped', 'grouped + pw', 'multiplier + pw'.

  As the spectrum registry names it (``sepconv.spectrum.legend_of``).
  """
  return spectrum.legend_of(config)


def colour_of(family: str, others: Sequence[str] = ()) -> str:
  """The family's fixed colour; a family outside ``FAMILY_COLOURS`` by its place in ``others``."""
  if family in FAMILY_COLOURS:
    return FAMILY_COLOURS[family]
  extra = sorted(f for f in set(others) if f not in FAMILY_COLOURS)
  index = extra.index(family) if family in extra else 0
  return OTHER_COLOURS[index % len(OTHER_COLOURS)]


def _families_in_order(families: Sequence[str]) -> list[str]:
  known = [f for f in FAMILY_COLOURS if f in families and f != ANCHOR]
  return known + sorted(set(families) - set(FAMILY_COLOURS) - {ANCHOR})


def _point_label(label: str) -> str:
  """A row label without the pointwise suffix its family colour already shows."""
  for suffix in (" +pw", " + pw"):
    if label.endswith(suffix):
      return label[:-len(suffix)]
  return label


def _spread(stat) -> float:
  """Error bar half-length: the 95% t-interval half-width, 0 for a single value."""
  ci = getattr(stat, "ci", None)
  return ci or 0.0


def _yerr(values: Sequence[float]) -> list[float] | None:
  """Error bars, or None where every one is zero (no caps drawn through the markers)."""
  return list(values) if any(values) else None


def _plain_log_ticks(axis) -> None:
  """Log-axis ticks written as plain numbers (0.5, 10, 2000), minor ticks unlabelled."""
  axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
  axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def save(fig: Figure, stem: Path) -> list[Path]:
  """Writes ``stem``.png and ``stem``.pdf; returns both paths."""
  FigureCanvasAgg(fig)
  paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
  fig.savefig(paths[0], format="png", dpi=DPI, metadata=PNG_METADATA)
  fig.savefig(paths[1], format="pdf", dpi=DPI, metadata=PDF_METADATA)
  return paths


@contextlib.contextmanager
def _style():
  """matplotlib's default style whatever the user's matplotlibrc says, at paper font sizes."""
  with matplotlib.style.context("default"), matplotlib.rc_context(
      {"pdf.fonttype": 42, "font.size": FONT_SIZE, "axes.titlesize": FONT_SIZE + 1,
       "axes.labelsize": FONT_SIZE, "xtick.labelsize": FONT_SIZE - 1,
       "ytick.labelsize": FONT_SIZE - 1, "legend.fontsize": FONT_SIZE - 1,
       "lines.markersize": 4, "lines.linewidth": 1.2, "errorbar.capsize": 2}):
    yield


def _figure(panels: int) -> Figure:
  return Figure(figsize=(COLUMN_WIDTH, 0.6 + PANEL_HEIGHT * panels), layout="constrained")


def _freeze_layout(fig: Figure) -> None:
  """Runs the layout once and keeps it, so labels placed now stay where they were placed."""
  FigureCanvasAgg(fig)
  fig.draw_without_rendering()
  fig.set_layout_engine("none")


def _anchor_band(ax, mean: float, half: float | None, label: str) -> None:
  """The anchor as a horizontal reference line, with its interval shaded."""
  ax.axhline(mean, color="black", linestyle=":", linewidth=1.0, label=label, zorder=1)
  if half:
    ax.axhspan(mean - half, mean + half, color="black", alpha=0.08, linewidth=0, zorder=0)


def accuracy_vs_mult_adds(rows: Sequence[TrainRow], stem: Path) -> list[Path]:
  """Test accuracy (mean, 95% CI bars over seeds) against mult-adds, one series per family.

  The standard anchor is a dotted line with its interval shaded; points are
  labelled by group size and multiplier where a label fits.
  """
  primary = metrics.metric(metrics.PRIMARY)
  rows = [r for r in rows if primary.name in r.stats and "mult_adds" in r.stats]
  if not rows:
    return []
  families = [family_of(r.config) for r in rows]
  with _style():
    fig = _figure(1)
    ax = fig.add_subplot()
    labels = []
    for family in _families_in_order(families):
      pts = sorted(((r.stats["mult_adds"].mean, r) for r, f in zip(rows, families) if f == family),
                   key=lambda p: (p[0], p[1].label))
      xs = [x for x, _ in pts]
      ys = [100.0 * r.stats[primary.name].mean for _, r in pts]
      es = [100.0 * _spread(r.stats[primary.name]) for _, r in pts]
      colour = colour_of(family, families)
      ax.errorbar(xs, ys, yerr=_yerr(es), marker="o", color=colour, label=family or None)
      labels += [(x, y, _point_label(r.label), colour) for x, y, (_, r) in zip(xs, ys, pts)]
    for r, f in zip(rows, families):
      if f == ANCHOR:
        acc = r.stats[primary.name]
        _anchor_band(ax, 100.0 * acc.mean, 100.0 * _spread(acc) or None, "standard (anchor)")
        ax.errorbar([r.stats["mult_adds"].mean], [100.0 * acc.mean], yerr=[100.0 * _spread(acc)],
                    marker="*", markersize=8, color="black", linestyle="none")
        break
    ax.set_xscale("log")
    ax.set_xlabel("mult-adds per example")
    ax.set_ylabel(f"{primary.title} ({primary.unit})")
    ax.grid(True, which="major", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
      fig.legend(loc="outside lower center", ncol=2, frameon=False)
    _freeze_layout(fig)
    place_labels(ax, labels, font_size=FONT_SIZE - 2)
    return save(fig, stem)


def _panels(source: str) -> list[tuple[str, str]]:
  """(metric, title) of each registered metric of ``source`` (``sepconv.records.metrics``)."""
  return [(name, metrics.metric(name).title) for name in metrics.names(source)]


def _impl_styles(rows: Sequence[BenchRow]) -> dict[str, tuple[str, str]]:
  impls = list(dict.fromkeys(r.impl for r in rows))
  return {impl: IMPL_STYLES[i % len(IMPL_STYLES)] for i, impl in enumerate(impls)}


def _style_legend(fig: Figure, families: Sequence[str], styles: dict, anchor: bool) -> None:
  """One figure legend: a colour per family, a line style per implementation, the anchor."""
  handles = [Line2D([], [], color=colour_of(f, families), marker="o", label=f)
             for f in _families_in_order(families) if f]
  handles += [Line2D([], [], color="grey", linestyle=ls, marker=mk, label=impl)
              for impl, (ls, mk) in styles.items()]
  if anchor:
    handles.append(Line2D([], [], color="black", linestyle=":", marker="*", label="standard (anchor), per impl"))
  if handles:
    fig.legend(handles=handles, loc="outside lower center", ncol=3, frameon=False)


def throughput_vs_group_size(rows: Sequence[BenchRow], stem: Path) -> list[Path]:
  """Images/s against group size, a colour per family and a line style per implementation.

  One panel per measure, stacked. The standard anchor, which has no group size
  of its own (each layer's channel count), is a dotted reference line per
  implementation. Error bars are 95% t-intervals over repeated runs where there are some.
  """
  anchors = [r for r in rows if family_of(r.config) == ANCHOR]
  rows = [r for r in rows if isinstance(r.config.get("group_size"), int)]
  panels = [(m, t) for m, t in _panels("throughput") if any(m in r.stats for r in rows)]
  if not panels:
    return []
  families = [family_of(r.config) for r in rows]
  styles = _impl_styles(rows + anchors)
  with _style():
    fig = _figure(len(panels))
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, (metric, title) in zip(axes, panels):
      for family in _families_in_order(families):
        for impl, (ls, mk) in styles.items():
          pts = sorted(((r.config["group_size"], r.stats[metric]) for r, f in zip(rows, families)
                        if r.impl == impl and f == family and metric in r.stats), key=lambda p: p[0])
          if pts:
            # Points at one group size (multipliers at g=1) are not a line.
            one_x = len({g for g, _ in pts}) < len(pts)
            ax.errorbar([g for g, _ in pts], [s.mean for _, s in pts],
                        yerr=_yerr([_spread(s) for _, s in pts]), color=colour_of(family, families),
                        linestyle="none" if one_x else ls, marker=mk)
      for r in anchors:
        if metric in r.stats:
          ax.axhline(r.stats[metric].mean, color="black", linewidth=1.0, zorder=1,
                     linestyle=styles[r.impl][0] if styles[r.impl][0] != "-" else ":")
      ax.set_xscale("log", base=2)
      _plain_log_ticks(ax.xaxis)
      ax.set_yscale("log")
      _plain_log_ticks(ax.yaxis)
      ax.set_ylabel("images / s")
      ax.set_title(title)
      ax.grid(True, which="major", alpha=0.3)
    axes[-1].set_xlabel("group size (channels per group)")
    _style_legend(fig, families, styles, bool(anchors))
    return save(fig, stem)




def time_vs_mult_adds(rows: Sequence[BenchRow], stem: Path) -> list[Path]:
  """Measured time against counted mult-adds, one panel per measure, stacked.

  A colour per family, a marker per implementation, the standard anchor starred;
  the first implementation's points are labelled where a label fits.
  """
  rows = [r for r in rows if "mult_adds" in r.stats]
  panels = [(m, t) for m, t in _panels("timing") if any(m in r.stats for r in rows)]
  if not panels:
    return []
  families = [family_of(r.config) for r in rows]
  styles = _impl_styles(rows)
  first = next(iter(styles))
  with _style():
    fig = _figure(len(panels))
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    labels, others = {}, {}
    for ax, (metric, title) in zip(axes, panels):
      labels[ax], others[ax] = [], []
      for r, f in zip(rows, families):
        if metric not in r.stats:
          continue
        x, s = r.stats["mult_adds"].mean, r.stats[metric]
        colour = colour_of(f, families)
        ax.errorbar([x], [s.mean], yerr=_yerr([_spread(s)]), color=colour, linestyle="none",
                    marker="*" if f == ANCHOR else styles[r.impl][1],
                    markersize=8 if f == ANCHOR else 4, markerfacecolor="none" if r.impl != first else colour)
        if r.impl == first:
          labels[ax].append((x, s.mean, _point_label(r.label), colour))
        else:
          others[ax].append((x, s.mean))
      ax.set_xscale("log")
      ax.set_yscale("log")
      _plain_log_ticks(ax.yaxis)
      ax.set_ylabel("time (ms)")
      ax.set_title(title)
      ax.grid(True, which="major", alpha=0.3)
    axes[-1].set_xlabel("counted mult-adds")
    handles = [Line2D([], [], color=colour_of(f, families), marker="*" if f == ANCHOR else "o",
                      linestyle="none", label=f or "runs")
               for f in [ANCHOR] * (ANCHOR in families) + _families_in_order(families)]
    handles += [Line2D([], [], color="grey", marker=mk, linestyle="none",
                       markerfacecolor="grey" if impl == first else "none", label=impl)
                for impl, (_, mk) in styles.items()]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, frameon=False)
    _freeze_layout(fig)
    for ax, pts in labels.items():
      place_labels(ax, pts, others[ax], font_size=FONT_SIZE - 2)
    return save(fig, stem)


def cka_heatmap(group: CkaGroup, stem: Path) -> list[Path]:
  """CKA matrix on the shared 0-1 colour scale, values written in cells when few."""
  side = len(group.names)
  size = max(4.0, min(14.0, 1.0 + 0.45 * side))
  with _style():
    fig = Figure(figsize=(size + 1.2, size))
    ax = fig.add_subplot()
    image = ax.imshow(group.mean, vmin=0.0, vmax=1.0, cmap="viridis", interpolation="nearest")
    ax.set_xticks(range(side), group.names, rotation=90, fontsize=7)
    ax.set_yticks(range(side), group.names, fontsize=7)
    if side <= 12:
      for i, row in enumerate(group.mean):
        for j, v in enumerate(row):
          if math.isfinite(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6,
                    color="black" if v > 0.6 else "white")
    fig.colorbar(image, ax=ax, label="linear CKA")
    ax.set_title(f"Linear CKA: {group.label}", fontsize=9)
    fig.tight_layout()
    return save(fig, stem)


def decomposition_error_vs_group_size(rows: Sequence[DecompositionRow], stem: Path) -> list[Path]:
  """Relative projection error against group size, one panel per layer, stacked.

  A colour per family as elsewhere (plain grouped; grouped + pointwise at m = 1;
  at m > 1, a marker per multiplier).
  """
  rows = [r for r in rows if isinstance(r.group_size, int)]
  if not rows:
    return []
  layers = list(dict.fromkeys(r.layer for r in rows))
  markers = ("o", "s", "^", "D", "v")
  with _style():
    fig = _figure(len(layers))
    axes = fig.subplots(len(layers), 1, squeeze=False)[:, 0]
    for ax, layer in zip(axes, layers):
      series = sorted({(str(r.pointwise), -1 if r.depth_multiplier is None else r.depth_multiplier)
                       for r in rows if r.layer == layer})
      for i, (pw, m) in enumerate(series):
        pts = sorted(((r.group_size, r.error) for r in rows if r.layer == layer
                      and str(r.pointwise) == pw
                      and (-1 if r.depth_multiplier is None else r.depth_multiplier) == m),
                     key=lambda p: p[0])
        family = family_of({"pointwise": pw == "True", "depth_multiplier": m})
        label = "grouped" if pw == "False" else f"grouped + pw, m={m}"
        ax.errorbar([g for g, _ in pts], [e.mean for _, e in pts],
                    yerr=_yerr([_spread(e) for _, e in pts]), marker=markers[i % len(markers)],
                    color=colour_of(family), label=label)
      ax.set_xscale("log", base=2)
      _plain_log_ticks(ax.xaxis)
      ax.set_ylim(bottom=0.0)
      ax.set_ylabel("relative error")
      ax.set_title(layer)
      ax.grid(True, which="major", alpha=0.3)
      ax.legend()
    axes[-1].set_xlabel("group size (channels per group)")
    return save(fig, stem)
