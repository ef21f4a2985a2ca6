"""From raw records to aggregated rows: grouping by configuration, mean and std over seeds.

Every number a table or plot shows passes through here, computed from the
records alone. Records of one configuration (its ``config`` minus the ``seed`` and
``fold`` that name one replicate) form one row; mean and sample standard deviation
(ddof=1) are taken over its records, summed with ``math.fsum`` in file order so the
result is reproducible to the last bit, with the 95% t-interval of the mean
(``sepconv.report.stats``). Training rows also keep each metric replicate by
replicate, for paired comparisons: a replicate is (seed, fold), the fold None on a
fixed train/test split (``replicate_of``).
Missing fields are skipped, never filled in.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterable, Sequence

from sepconv.records import metrics as _metrics
from sepconv.records.schema import DIVERGED
from sepconv.report import stats as _stats

KINDS = ("train", "bench", "decomposition", "cka")

# The metrics aggregated are the registered ones (``sepconv.records.metrics``), read when
# rows are built: a train row's from its record's ``metrics`` and ``cost``, a bench row's
# timings and throughputs from its ``timings``.
# Config fields naming the batch a timing was measured on, in preference order.
BATCH_FIELDS = ("bench_batch", "batch", "batch_size")


def is_number(value) -> bool:
  """True for JSON numbers (bools excluded)."""
  return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class Stat:
  """Mean, sample standard deviation (None for one value) and count of some values."""

  mean: float
  std: float | None
  n: int

  @classmethod
  def of(cls, values: Iterable) -> Stat | None:
    """Stat of the numeric entries of ``values``; None if there are none."""
    xs = [float(v) for v in values if is_number(v)]
    if not xs:
      return None
    mean = math.fsum(xs) / len(xs)
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else None
    return cls(mean, std, len(xs))

  @property
  def ci(self) -> float | None:
    """Half-width of the 95% t-interval of the mean (None for one value)."""
    return _stats.half_width(self.std, self.n)


# Config fields that name one replicate of a configuration, not the configuration.
REPLICATE_FIELDS = ("seed", "fold")


def config_of(record: dict) -> dict:
  """The record's configuration without the seed and fold of its replicate."""
  config = record.get("config")
  config = config if isinstance(config, dict) else {}
  return {k: v for k, v in config.items() if k not in REPLICATE_FIELDS}


def replicate_of(record: dict) -> tuple | None:
  """(seed, fold) of a run: fold None on a fixed split; None without a seed.

  The seed is the record's ``seed`` (else its config's); the fold is config ``fold``
  where config ``folds`` is k >= 2 (k-fold cross-validation), else None.
  """
  config = record.get("config") if isinstance(record.get("config"), dict) else {}
  seed = record.get("seed", config.get("seed"))
  if seed is None:
    return None
  fold = config.get("fold") if config.get("folds") else None
  return (seed, fold)


def config_key(config: dict) -> str:
  """A canonical string for grouping: JSON with sorted keys."""
  return json.dumps(config, sort_keys=True, default=str)


def _run_label(record: dict) -> str:
  run_id = str(record.get("run_id", ""))
  return re.sub(r"(/?(seed|fold)=[^/]*)+$", "", run_id)


def diverged_runs(records: Sequence) -> list[str]:
  """'label (seed s[, fold f])' of every job recorded as diverged (left out of tables)."""
  out = []
  for r in records:
    if isinstance(r, dict) and r.get("status") == DIVERGED:
      rep = replicate_of(r)
      out.append(label_of(r) + ("" if rep is None else f" (seed {rep[0]}"
                                + ("" if rep[1] is None else f", fold {rep[1]}") + ")"))
  return out


def label_of(record: dict) -> str:
  """Display label: config label, else conv spec, else run id without its seed."""
  config = config_of(record)
  for key in ("label", "conv"):
    if isinstance(config.get(key), str) and config[key]:
      return config[key]
  return _run_label(record) or config_key(config)


@dataclasses.dataclass
class Group:
  """Records sharing one configuration (all but seed)."""

  key: str
  config: dict
  label: str
  records: list[dict]


def group_records(records: Sequence[dict], extra_key=None, label=label_of) -> list[Group]:
  """Groups records by configuration (and ``extra_key(record)`` if given), first-seen order.

  ``label(record)`` names each group (default ``label_of``).

  Groups that share a display label but differ in configuration get the
  differing fields appended to the label, so no two rows read the same.
  """
  groups: dict[str, Group] = {}
  for record in records:
    config = config_of(record)
    key = config_key(config)
    if extra_key is not None:
      key += "|" + json.dumps(extra_key(record), sort_keys=True, default=str)
    if key not in groups:
      groups[key] = Group(key, config, label(record), [])
    groups[key].records.append(record)
  out = list(groups.values())
  by_label: dict[str, list[Group]] = {}
  for g in out:
    by_label.setdefault(g.label, []).append(g)
  for same in by_label.values():
    configs = {config_key(g.config) for g in same}
    if len(configs) < 2:
      continue
    fields = sorted({k for g in same for k in g.config}
                    - {k for k in same[0].config
                       if all(k in g.config and g.config[k] == same[0].config[k] for g in same)})
    for g in same:
      g.label += " (" + ", ".join(f"{k}={g.config.get(k)}" for k in fields) + ")"
  return out


def _sort_value(value):
  """Sort key for possibly missing or mixed-type values: numbers, then strings, then None."""
  if is_number(value):
    return (0, float(value), "")
  if value is None:
    return (2, 0.0, "")
  return (1, 0.0, str(value))


def varying_fields(configs: Sequence[dict], exclude: Iterable[str] = ()) -> list[str]:
  """Config fields whose values are not the same across ``configs``, sorted by name."""
  exclude = set(exclude)
  keys = sorted({k for c in configs for k in c} - exclude)
  return [k for k in keys
          if len({json.dumps(c.get(k), sort_keys=True, default=str) for c in configs}) > 1]


@dataclasses.dataclass(frozen=True)
class TrainRow:
  """One configuration's training results over its runs (seeds, or seeds x folds)."""

  label: str
  config: dict
  seeds: int  # runs: one per replicate
  stats: dict[str, Stat]  # metric or cost name -> Stat
  effective_rank: dict[str, Stat]  # layer -> Stat
  extra: dict[str, Stat]  # other numeric scalar metrics
  # metric -> {(seed, fold): value}, fold None on a fixed split
  by_replicate: dict[str, dict] = dataclasses.field(default_factory=dict)

  @property
  def folds(self) -> int:
    """k of k-fold cross-validation (config ``folds``), 0 on a fixed split."""
    k = self.config.get("folds")
    return int(k) if is_number(k) and k >= 2 and float(k).is_integer() else 0


def train_rows(records: Sequence[dict]) -> list[TrainRow]:
  """Aggregated ``train`` records, ordered by (dataset, model, mult-adds, label)."""
  rows = []
  for g in group_records([r for r in records if r.get("kind") == "train"]):
    metrics = [r.get("metrics") if isinstance(r.get("metrics"), dict) else {} for r in g.records]
    costs = [r.get("cost") if isinstance(r.get("cost"), dict) else {} for r in g.records]
    stats = {}
    train_metrics = _metrics.names("metrics")
    for name in train_metrics:
      stat = Stat.of(m.get(name) for m in metrics)
      if stat is not None:
        stats[name] = stat
    for name in _metrics.names("cost"):
      stat = Stat.of(c.get(name) for c in costs)
      if stat is not None:
        stats[name] = stat
    layers = [layer for m in metrics if isinstance(m.get("effective_rank"), dict)
              for layer in m["effective_rank"]]
    ranks = {layer: Stat.of(m["effective_rank"].get(layer) for m in metrics
                            if isinstance(m.get("effective_rank"), dict))
             for layer in dict.fromkeys(layers)}
    extra_names = sorted({k for m in metrics for k, v in m.items()
                          if is_number(v) and k not in train_metrics})
    extra = {k: Stat.of(m.get(k) for m in metrics) for k in extra_names}
    by_replicate = {name: {replicate_of(r): float(m[name]) for r, m in zip(g.records, metrics)
                           if is_number(m.get(name)) and replicate_of(r) is not None}
                    for name in train_metrics}
    rows.append(TrainRow(g.label, g.config, len(g.records), stats,
                         {k: v for k, v in ranks.items() if v is not None}, extra,
                         {k: v for k, v in by_replicate.items() if v}))
  rows.sort(key=lambda r: (_sort_value(r.config.get("dataset")), _sort_value(r.config.get("model")),
                           _sort_value(r.stats["mult_adds"].mean if "mult_adds" in r.stats else None),
                           r.label))
  return rows


@dataclasses.dataclass(frozen=True)
class BenchRow:
  """One configuration's timings for one implementation over repeated records."""

  label: str
  config: dict
  impl: str
  stats: dict[str, Stat]  # registered timings and throughputs, mult_adds


def _throughput(timing: dict, config: dict, name: str) -> float | None:
  recorded, derived = _metrics.metric(name).recorded_as, _metrics.metric(name).derived_from
  for key in recorded:
    if is_number(timing.get(key)):
      return float(timing[key])
  batch = next((config[k] for k in BATCH_FIELDS if is_number(config.get(k))), None)
  for key in derived:
    if batch is not None and batch > 0 and is_number(timing.get(key)) and timing[key] > 0:
      return 1000.0 * batch / timing[key]
  return None


def bench_rows(records: Sequence[dict]) -> list[BenchRow]:
  """Aggregated ``bench`` timings, one row per (configuration, implementation).

  A throughput recorded in the timing (``infer_images_per_s`` or
  ``fwd_images_per_s``, ``fwdbwd_images_per_s``, ``train_images_per_s``) is used
  as is; otherwise it is batch / time per record, the batch being the first of
  config ``bench_batch``, ``batch``, ``batch_size``.
  """
  per_impl = []
  for r in records:
    if r.get("kind") != "bench" or not isinstance(r.get("timings"), dict):
      continue
    for impl, t in r["timings"].items():
      if isinstance(t, dict):
        per_impl.append({**r, "_impl": str(impl), "_timing": t})
  rows = []
  for g in group_records(per_impl, extra_key=lambda r: r["_impl"]):
    stats = {}
    for name in _metrics.names("timing"):
      stat = Stat.of(r["_timing"].get(name) for r in g.records)
      if stat is not None:
        stats[name] = stat
    for name in _metrics.names("throughput"):
      stat = Stat.of(_throughput(r["_timing"], config_of(r), name) for r in g.records)
      if stat is not None:
        stats[name] = stat
    mult_adds = Stat.of((r.get("cost") or {}).get("mult_adds") for r in g.records
                        if isinstance(r.get("cost"), dict))
    if mult_adds is not None:
      stats["mult_adds"] = mult_adds
    rows.append(BenchRow(g.label, g.config, g.records[0]["_impl"], stats))
  # One family after another (pointwise, multiplier), each along its group sizes.
  rows.sort(key=lambda r: (_sort_value(str(r.config.get("pointwise"))),
                           _sort_value(r.config.get("depth_multiplier")),
                           _sort_value(r.config.get("group_size")), r.label, r.impl))
  return rows


@dataclasses.dataclass(frozen=True)
class DecompositionRow:
  """Projection error of one spectrum point for one layer of one source model."""

  source: str  # label of the decomposed (standard) model's configuration
  config: dict
  layer: str
  group_size: int | None
  depth_multiplier: int | None
  pointwise: bool | None
  error: Stat


def decomposition_rows(records: Sequence[dict]) -> list[DecompositionRow]:
  """Aggregated ``decomposition`` errors, one row per (source, layer, point)."""
  flat = []
  for r in records:
    d = r.get("decomposition")
    if r.get("kind") != "decomposition" or not isinstance(d, dict):
      continue
    for e in d.get("errors") or []:
      if isinstance(e, dict) and is_number(e.get("rel_error")):
        point = (str(d.get("layer", "")), e.get("group_size"), e.get("depth_multiplier"),
                 e.get("pointwise"))
        flat.append({**r, "_point": point, "_error": e["rel_error"]})
  rows = []
  for g in group_records(flat, extra_key=lambda r: r["_point"]):
    layer, gs, m, pw = g.records[0]["_point"]
    rows.append(DecompositionRow(g.label, g.config, layer, gs, m, pw,
                                 Stat.of(r["_error"] for r in g.records)))
  rows.sort(key=lambda r: (r.source, r.layer, _sort_value(str(r.pointwise)),
                           _sort_value(r.depth_multiplier), _sort_value(r.group_size)))
  return rows


@dataclasses.dataclass(frozen=True)
class CkaGroup:
  """Mean CKA matrix over records sharing configuration, labels and layers."""

  label: str
  config: dict
  labels: list[str]
  layers: list[str]
  names: list[str]  # axis tick names
  mean: list[list[float]]
  n: int


def _axis_names(labels: list[str], layers: list[str]) -> list[str]:
  if len(labels) == 1:
    return list(layers)
  if len(layers) == 1:
    return list(labels)
  return [f"{a}/{b}" for a in labels for b in layers]


def _cka_label(record: dict) -> str:
  """Config label, else what the axes are: 'variants at <layer>' or '<label> layers'."""
  label = config_of(record).get("label")
  if isinstance(label, str) and label:
    return label
  labels, layers = record["_axes"]
  if len(layers) == 1 and len(labels) > 1:
    return f"variants at {layers[0]}"
  if len(labels) == 1:
    return f"{labels[0]} layers"
  return label_of(record)


def cka_groups(records: Sequence[dict]) -> list[CkaGroup]:
  """Aggregated ``cka`` matrices; a record whose matrix does not fit its axes is skipped."""
  usable = []
  for r in records:
    c = r.get("cka")
    if r.get("kind") != "cka" or not isinstance(c, dict):
      continue
    labels = [str(v) for v in c.get("labels") or []]
    layers = [str(v) for v in c.get("layers") or []]
    matrix = c.get("matrix")
    side = len(labels) * len(layers)
    if (side == 0 or not isinstance(matrix, list) or len(matrix) != side
        or any(not isinstance(row, list) or len(row) != side for row in matrix)):
      continue
    usable.append({**r, "_axes": (labels, layers)})
  out = []
  for g in group_records(usable, extra_key=lambda r: r["_axes"], label=_cka_label):
    labels, layers = g.records[0]["_axes"]
    side = len(labels) * len(layers)
    mean = [[Stat.of(r["cka"]["matrix"][i][j] for r in g.records) for j in range(side)]
            for i in range(side)]
    out.append(CkaGroup(g.label, g.config, labels, layers, _axis_names(labels, layers),
                        [[s.mean if s is not None else math.nan for s in row] for row in mean],
                        len(g.records)))
  out.sort(key=lambda c: (c.label, config_key(c.config), c.labels, c.layers))
  return out
