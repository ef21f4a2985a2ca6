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
import json
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import matplotlib.style
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sepconv.report.aggregate import BenchRow, CkaGroup, DecompositionRow, TrainRow, varying_fields

DPI = 120
PNG_METADATA = {"Software": None}
PDF_METADATA = {"Creator": None, "Producer": None, "CreationDate": None}
# Fields that place a point along a series rather than defining the series.
POSITION_FIELDS = ("group_size", "label", "conv")


def save(fig: Figure, stem: Path) -> list[Path]:
  """Writes ``stem``.png and ``stem``.pdf; returns both paths."""
  FigureCanvasAgg(fig)
  paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
  fig.savefig(paths[0], format="png", dpi=DPI, metadata=PNG_METADATA)
  fig.savefig(paths[1], format="pdf", dpi=DPI, metadata=PDF_METADATA)
  return paths


@contextlib.contextmanager
def _style():
  """matplotlib's default style whatever the user's matplotlibrc says."""
  with matplotlib.style.context("default"), matplotlib.rc_context({"pdf.fonttype": 42}):
    yield


def _value(v) -> str:
  return v if isinstance(v, str) else json.dumps(v, default=str)


def _series(configs: Sequence[dict], exclude: Sequence[str]) -> tuple[list[str], list[str]]:
  """Series name per config (its varying fields, minus position fields) and the field list."""
  fields, partitions = [], set()
  for k in varying_fields(configs, exclude=(*POSITION_FIELDS, *exclude)):
    # A field that splits the configs exactly as an earlier one does adds only words.
    values = [_value(c.get(k)) for c in configs]
    partition = tuple(values.index(v) for v in values)
    if partition not in partitions:
      partitions.add(partition)
      fields.append(k)
  names = [", ".join(f"{k}={_value(c.get(k))}" for k in fields) for c in configs]
  return names, fields


def accuracy_vs_mult_adds(rows: Sequence[TrainRow], stem: Path) -> list[Path]:
  """Test accuracy (mean ± std over seeds) against mult-adds, one series per family."""
  rows = [r for r in rows if "test_accuracy" in r.stats and "mult_adds" in r.stats]
  if not rows:
    return []
  names, _ = _series([r.config for r in rows], exclude=())
  with _style():
    fig = Figure(figsize=(6.4, 4.4))
    ax = fig.add_subplot()
    for name in sorted(set(names)):
      pts = sorted(((r.stats["mult_adds"].mean, r) for r, n in zip(rows, names) if n == name),
                   key=lambda p: (p[0], p[1].label))
      xs = [x for x, _ in pts]
      ys = [100.0 * r.stats["test_accuracy"].mean for _, r in pts]
      es = [100.0 * (r.stats["test_accuracy"].std or 0.0) for _, r in pts]
      ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=name or None)
      for x, y, (_, r) in zip(xs, ys, pts):
        ax.annotate(r.label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("mult-adds per example")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy vs compute")
    ax.grid(True, which="both", alpha=0.3)
    if any(names):
      ax.legend(fontsize=7)
    fig.tight_layout()
    return save(fig, stem)


PANELS = (("infer_images_per_s", "inference (forward)"),
          ("fwdbwd_images_per_s", "forward + backward"),
          ("train_images_per_s", "training step"))


def throughput_vs_group_size(rows: Sequence[BenchRow], stem: Path) -> list[Path]:
  """Images/s against group size, one line per implementation, one panel per measure."""
  rows = [r for r in rows if isinstance(r.config.get("group_size"), int)]
  panels = [(m, t) for m, t in PANELS if any(m in r.stats for r in rows)]
  if not panels:
    return []
  names, _ = _series([r.config for r in rows], exclude=())
  keys = sorted({(r.impl, n) for r, n in zip(rows, names)})
  with _style():
    fig = Figure(figsize=(5.0 * len(panels), 4.0))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (metric, title) in zip(axes, panels):
      for impl, name in keys:
        pts = sorted(((r.config["group_size"], r.stats[metric]) for r, n in zip(rows, names)
                      if r.impl == impl and n == name and metric in r.stats), key=lambda p: p[0])
        if not pts:
          continue
        ax.errorbar([g for g, _ in pts], [s.mean for _, s in pts],
                    yerr=[s.std or 0.0 for _, s in pts], marker="o", capsize=3,
                    label=impl + (f" ({name})" if name else ""))
      ax.set_xscale("log", base=2)
      ax.set_yscale("log")
      ax.set_xlabel("group size (channels per group)")
      ax.set_ylabel("images / s")
      ax.set_title(title)
      ax.grid(True, which="both", alpha=0.3)
      if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    fig.tight_layout()
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
  """Relative projection error against group size, one panel per layer."""
  rows = [r for r in rows if isinstance(r.group_size, int)]
  if not rows:
    return []
  layers = list(dict.fromkeys(r.layer for r in rows))
  cols = min(3, len(layers))
  nrows = math.ceil(len(layers) / cols)
  with _style():
    fig = Figure(figsize=(4.2 * cols, 3.4 * nrows))
    axes = fig.subplots(nrows, cols, squeeze=False)
    for ax, layer in zip(axes.flat, layers):
      series = sorted({(str(r.pointwise), -1 if r.depth_multiplier is None else r.depth_multiplier)
                       for r in rows if r.layer == layer})
      for pw, m in series:
        pts = sorted(((r.group_size, r.error) for r in rows if r.layer == layer
                      and str(r.pointwise) == pw
                      and (-1 if r.depth_multiplier is None else r.depth_multiplier) == m),
                     key=lambda p: p[0])
        label = "grouped, no pointwise" if pw == "False" else f"+ pointwise, m={m}"
        ax.errorbar([g for g, _ in pts], [e.mean for _, e in pts],
                    yerr=[e.std or 0.0 for _, e in pts], marker="o", capsize=3, label=label)
      ax.set_xscale("log", base=2)
      ax.set_ylim(bottom=0.0)
      ax.set_xlabel("group size")
      ax.set_ylabel("relative error")
      ax.set_title(layer, fontsize=9)
      ax.grid(True, which="both", alpha=0.3)
      ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(layers):]:
      ax.set_visible(False)
    fig.tight_layout()
    return save(fig, stem)
