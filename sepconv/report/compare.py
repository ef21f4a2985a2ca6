"""Did it reproduce? Two record sets side by side: per variant, and where they came from.

``compare(reference, run)`` matches training rows by label (and data set/model
where those are recorded) and compares their primary metric (``sepconv.records.metrics``:
test accuracy): reference mean ±
std (and 95% t-interval) against the run's, and the difference against the
seed spread (``stats.two_sample_difference``: Welch's 95% interval with two or
more seeds on both sides, else the prediction interval of the side with seeds).
A variant is *reproduced* where that interval holds the difference's zero, *moved*
where it does not; with one seed on each side only identical numbers count as
reproduced ("no spread" otherwise). Bench-only sets (layer sweeps) are compared
on their measured times the same way, per implementation.

The provenance lines list what differs between the two sets: versions, device
kind and count, CPU, git revision. ``comparison_table`` renders it all through
``writer`` as Markdown or LaTeX.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from sepconv.records import RECORDS_FILE, metrics, read_records
from sepconv.report import aggregate, provenance, stats, writer



@dataclasses.dataclass(frozen=True)
class Line:
  """One variant (and metric) in both sets."""

  label: str
  metric: str
  fmt: str
  reference: aggregate.Stat | None
  run: aggregate.Stat | None
  difference: stats.Interval | None

  @property
  def verdict(self) -> str:
    """'reproduced', 'moved', 'no spread' (one value each side, unequal), or 'missing'."""
    d = self.difference
    if self.reference is None or self.run is None or d is None:
      return "missing in run" if self.run is None else "missing in reference"
    if d.half_width is None:
      return "reproduced" if d.mean == 0 else "no spread"
    return "moved" if d.resolved else "reproduced"


@dataclasses.dataclass(frozen=True)
class Comparison:
  """Per-variant lines and the provenance fields that differ (title -> (reference, run))."""

  lines: tuple[Line, ...]
  provenance: dict[str, tuple[str, str]]
  diverged: tuple[str, ...] = ()  # runs recorded as diverged, left out ("label (seed s) in ...")

  @property
  def reproduced(self) -> bool:
    """Whether every variant present in both sets reproduced."""
    both = [x for x in self.lines if not x.verdict.startswith("missing")]
    return bool(both) and all(x.verdict == "reproduced" for x in both)

  def summary(self) -> str:
    both = [x for x in self.lines if not x.verdict.startswith("missing")]
    ok = sum(x.verdict == "reproduced" for x in both)
    text = f"{ok} of {len(both)} compared rows reproduced within the seed spread (95%)"
    missing = len(self.lines) - len(both)
    text += f"; {missing} in one set only." if missing else "."
    return text + (f" Diverged, left out: {', '.join(self.diverged)}." if self.diverged else "")


def _key(config: dict, label: str, extra: str = "") -> tuple:
  return (str(config.get("dataset")), str(config.get("model")), label, extra)


def _train_values(records: Sequence[dict]) -> dict[tuple, list[float]]:
  out = {}
  # Failed and diverged jobs' records (a "status") carry no result.
  for g in aggregate.group_records([r for r in records
                                    if r.get("kind") == "train" and "status" not in r]):
    vals = [float(r["metrics"][metrics.PRIMARY]) for r in g.records
            if isinstance(r.get("metrics"), dict) and aggregate.is_number(r["metrics"].get(metrics.PRIMARY))]
    if vals:
      out.setdefault(_key(g.config, g.label), []).extend(vals)
  return out


def _bench_values(records: Sequence[dict]) -> dict[tuple, list[float]]:
  out = {}
  for r in records:
    if r.get("kind") != "bench" or not isinstance(r.get("timings"), dict):
      continue
    config, label = aggregate.config_of(r), aggregate.label_of(r)
    for impl, timing in r["timings"].items():
      if not isinstance(timing, dict):
        continue
      for metric in metrics.names("timing"):
        if aggregate.is_number(timing.get(metric)):
          out.setdefault(_key(config, f"{label} ({impl})", metric), []).append(float(timing[metric]))
  return out


def compare(reference: Sequence[dict], run: Sequence[dict]) -> Comparison:
  """Compares ``run``'s records with ``reference``'s (both as read from records.jsonl)."""
  ref_values, run_values = _train_values(reference), _train_values(run)
  metric_of = {k: metrics.PRIMARY for k in {**ref_values, **run_values}}
  if not metric_of:
    ref_values, run_values = _bench_values(reference), _bench_values(run)
    metric_of = {k: k[3] for k in {**ref_values, **run_values}}
  lines = []
  for key in [*ref_values, *(k for k in run_values if k not in ref_values)]:
    a, b = ref_values.get(key), run_values.get(key)
    metric = metrics.metric(metric_of[key])
    lines.append(Line(key[2], metric.name, metric.fmt, aggregate.Stat.of(a) if a else None,
                      aggregate.Stat.of(b) if b else None,
                      stats.two_sample_difference(b, a) if a and b else None))
  diverged = tuple([f"{d} in the reference" for d in aggregate.diverged_runs(reference)]
                   + [f"{d} in the run" for d in aggregate.diverged_runs(run)])
  return Comparison(tuple(lines), provenance.differences(reference, run), diverged)


def compare_dirs(reference_dir: str | Path, run_dir: str | Path) -> Comparison:
  """``compare`` of two results folders' records files."""
  paths = [Path(d) / RECORDS_FILE for d in (reference_dir, run_dir)]
  for path in paths:
    if not path.is_file():
      raise FileNotFoundError(f"no records at {path}")
  return compare(read_records(paths[0]), read_records(paths[1]))


def comparison_table(c: Comparison) -> writer.Table:
  """The per-variant comparison as a table, its caption the summary and provenance differences."""
  names = {x.metric for x in c.lines}
  columns = [writer.Column("variant", "label")]
  if len(names) > 1:
    columns.append(writer.Column("measure", "metric"))
  shown = metrics.metric(c.lines[0].metric if c.lines else metrics.PRIMARY)
  fmt, unit = shown.fmt, f" ({shown.unit})"
  columns += [writer.Column("reference n", "reference_n", "count"),
              writer.Column(f"reference{unit}", "reference", fmt),
              writer.Column("reference 95% CI", "reference_ci"),
              writer.Column("run n", "run_n", "count"),
              writer.Column(f"run{unit}", "run", fmt),
              writer.Column("Δ run - reference", "difference", fmt),
              writer.Column("verdict", "verdict")]
  rows = []
  for x in c.lines:
    ci = None
    if x.reference is not None and x.reference.ci is not None:
      ci = stats.Interval(x.reference.mean, x.reference.ci, x.reference.n)
    rows.append(tuple([x.label] + ([x.metric] if len(names) > 1 else [])
                      + [x.reference.n if x.reference else None, x.reference,
                         _ci_text(ci, fmt), x.run.n if x.run else None, x.run, x.difference,
                         x.verdict]))
  notes = [c.summary()]
  notes.append("Mean ± std over seeds; run − reference with its 95% interval (Welch, or the "
               "prediction interval of the side with seeds when the other has one); reproduced: "
               "the interval holds 0.")
  if c.provenance:
    notes.append("Provenance differences: " + "; ".join(
        f"{title}: {a} (reference) vs {b} (run)" for title, (a, b) in c.provenance.items()) + ".")
  else:
    notes.append("Provenance: no recorded difference.")
  return writer.Table("compare", "Reproduction: this run against the reference", tuple(columns),
                      tuple(rows), caption=" ".join(notes))


def _ci_text(ci: stats.Interval | None, fmt: str) -> str | None:
  if ci is None:
    return None
  scale = 100.0 if fmt == "percent" else 1.0
  return f"{ci.low * scale:.2f} to {ci.high * scale:.2f}"


def to_markdown(c: Comparison) -> str:
  return writer.to_markdown(comparison_table(c))


def to_latex(c: Comparison) -> str:
  return writer.to_latex(comparison_table(c))
