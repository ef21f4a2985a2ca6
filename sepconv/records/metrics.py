"""The metric registry: every number a record carries that tables, comparisons and plots show.

One ``Metric`` per name says where records keep it, how it reads (table header, number
format, unit, plot title) and which way is better. ``sepconv.report`` reads this registry
for its aggregation, its comparison and its plots; the table layouts below list which
metrics each table shows, in column order. Adding a metric is one entry here (and one
layout name where a table should show it), plus the code that records it.
"""

from __future__ import annotations

import dataclasses

# Where a record keeps a metric: ``metrics`` (a train record's), ``cost`` (analytic counts),
# ``timing`` (one implementation's entry in a bench record's ``timings``), ``throughput``
# (images/s of a bench timing, recorded or derived as batch / time).
SOURCES = ("metrics", "cost", "timing", "throughput")
# How a table shows a number (``sepconv.report.writer``): percent shows fractions x100.
FORMATS = ("count", "percent", "rate", "ms")


@dataclasses.dataclass(frozen=True)
class Metric:
  """One recorded number.

  Attributes:
    name: its key in the record.
    header: its table column header.
    fmt: its table format (``FORMATS``).
    unit: the unit of the shown number ('%' for fractions shown x100).
    higher_is_better: which way is better.
    sources: where records keep it (``SOURCES``).
    title: what it measures, as a plot axis or panel says it.
    recorded_as: for a throughput, the timing keys that hold it as measured, in preference order.
    derived_from: for a throughput, the timing keys (ms) it is derived from as batch / time.
  """

  name: str
  header: str
  fmt: str
  unit: str
  higher_is_better: bool
  sources: tuple[str, ...]
  title: str
  recorded_as: tuple[str, ...] = ()
  derived_from: tuple[str, ...] = ()

  def __post_init__(self):
    if self.fmt not in FORMATS:
      raise ValueError(f"fmt (={self.fmt!r}) of metric {self.name!r} must be one of {FORMATS}")
    for source in self.sources:
      if source not in SOURCES:
        raise ValueError(f"source (={source!r}) of metric {self.name!r} must be one of {SOURCES}")


_ACC, _RATE = dict(fmt="percent", unit="%", higher_is_better=True), dict(fmt="rate", unit="images/s")
_MS = dict(fmt="ms", unit="ms", higher_is_better=False, sources=("timing",))

METRICS: tuple[Metric, ...] = (
    Metric("test_accuracy", "test acc. (%)", sources=("metrics",), title="test accuracy", **_ACC),
    Metric("train_accuracy", "train acc. (%)", sources=("metrics",), title="train accuracy", **_ACC),
    Metric("probe_test_accuracy", "probe test acc. (%)", sources=("metrics",),
           title="linear-probe test accuracy", **_ACC),
    Metric("probe_train_accuracy", "probe train acc. (%)", sources=("metrics",),
           title="linear-probe train accuracy", **_ACC),
    Metric("train_seconds", "train time (s)", "rate", "s", False, ("metrics",), "training time"),
    Metric("infer_images_per_s", "infer img/s", higher_is_better=True,
           sources=("metrics", "throughput"), title="inference (forward)",
           recorded_as=("infer_images_per_s", "fwd_images_per_s"),
           derived_from=("fwd_ms", "infer_ms"), **_RATE),
    Metric("fwdbwd_images_per_s", "fwd+bwd img/s", higher_is_better=True, sources=("throughput",),
           title="forward + backward", recorded_as=("fwdbwd_images_per_s",),
           derived_from=("fwdbwd_ms",), **_RATE),
    Metric("train_images_per_s", "train img/s", higher_is_better=True,
           sources=("metrics", "throughput"), title="training step",
           recorded_as=("train_images_per_s",), derived_from=("train_step_ms",), **_RATE),
    Metric("params", "params", "count", "", False, ("cost",), "parameters"),
    Metric("params_with_bn", "params incl. BN", "count", "", False, ("cost",),
           "parameters incl. BatchNorm"),
    Metric("mult_adds", "mult-adds", "count", "", False, ("cost",), "mult-adds"),
    Metric("fwd_ms", "fwd (ms)", title="forward", **_MS),
    Metric("infer_ms", "infer (ms)", title="inference", **_MS),
    Metric("fwdbwd_ms", "fwd+bwd (ms)", title="forward + backward", **_MS),
    Metric("train_step_ms", "train step (ms)", title="training step", **_MS),
)
BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}

# The metric a reproduction is judged on, and the training runs' anchor is compared on.
PRIMARY = "test_accuracy"
# Column order of the training and the speed tables (``sepconv.report.tables``).
TRAIN_TABLE = ("test_accuracy", "train_accuracy", "probe_test_accuracy", "params",
               "params_with_bn", "mult_adds", "train_images_per_s", "infer_images_per_s",
               "train_seconds")
BENCH_TABLE = ("mult_adds", "fwd_ms", "infer_ms", "fwdbwd_ms", "train_step_ms",
               "infer_images_per_s", "fwdbwd_images_per_s", "train_images_per_s")


def metric(name: str) -> Metric:
  """The registered metric ``name``."""
  if name not in BY_NAME:
    raise ValueError(f"metric (={name!r}) must be one of {tuple(BY_NAME)}")
  return BY_NAME[name]


def names(source: str) -> tuple[str, ...]:
  """Names of the metrics kept in ``source``, in registry order."""
  if source not in SOURCES:
    raise ValueError(f"source (={source!r}) must be one of {SOURCES}")
  return tuple(m.name for m in METRICS if source in m.sources)


for _layout in (TRAIN_TABLE, BENCH_TABLE, (PRIMARY,)):
  for _name in _layout:
    metric(_name)
