"""Declarative experiment definitions: frozen dataclasses the job engine executes.

* ``Variant``: one grid point, a spectrum point plus the labels the tables use.
* ``GranularityAblation``: train one model family at every variant and seed, benchmark
  each variant's training and inference step, and compare what they learned.
* ``LayerSweep``: one layer across the spectrum: analytic cost and measured speed.
* ``PaperTables``: published figures recomputed from the library (no training).

Each kind has a runner (``sepconv.ablation.engine.RUNNERS``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sepconv import validate
from sepconv.spectrum import SpectrumPoint, parse_point
from sepconv.train.config import TrainConfig, default_config

# TrainConfig fields each run of an ablation sets itself.
_PER_RUN = ("dataset", "conv", "seed", "data_dir")


@dataclasses.dataclass(frozen=True)
class Variant:
  """One grid point: a spectrum point string and how it is labelled."""
  conv: str
  label: str | None = None

  def __post_init__(self):
    object.__setattr__(self, "conv", str(parse_point(self.conv)))  # canonical, validated
    if self.label is None:
      object.__setattr__(self, "label", self.point.label)

  @property
  def point(self) -> SpectrumPoint:
    return parse_point(self.conv)

  @property
  def slug(self) -> str:
    """A file-name-safe key."""
    return re.sub(r"[^A-Za-z0-9=_.-]+", "_", self.conv)

  def fields(self) -> dict:
    """The grid coordinates stored in every record's config."""
    p = self.point
    # Spatial group size; None for the standard conv, whose group size is each layer's C_in.
    group_size = None if p.name == "standard" else p.group_size or 1
    return {"conv": self.conv, "label": self.label, "group_size": group_size,
            "depth_multiplier": p.depth_multiplier, "pointwise": p.pointwise, "family": p.family}


def spectrum_grid(group_sizes: Sequence[int], *, multipliers: Sequence[int] = (1,),
                  with_pointwise: bool = True, without_pointwise: bool = True,
                  anchor: bool = True) -> tuple[Variant, ...]:
  """The standard anchor, grouped + pointwise at each (g, m), and plain grouped at each g."""
  variants = [Variant("standard")] if anchor else []
  if with_pointwise:
    variants += [Variant(f"dws:g={g},m={m}") for g in group_sizes for m in multipliers]
  if without_pointwise:
    variants += [Variant(f"grouped:g={g}") for g in group_sizes]
  return tuple(variants)


def _explicit(point: str) -> str | None:
  """The point's text with defaults written out, or None if it does not parse."""
  try:
    return str(parse_point(point).explicit())
  except ValueError:
    return None


@dataclasses.dataclass(frozen=True)
class GranularityAblation:
  """Train, benchmark and compare a model at every variant.

  Attributes:
    name: results go to ``results/<name>_<dataset>`` by default.
    variants: the grid.
    datasets: data set per ``--dataset`` choice; the first is the default.
    seeds: one training run per (variant, seed).
    train: ``TrainConfig`` fields set on every data set, on top of its preset (model,
      width_multiplier, ...; each run sets dataset, conv, seed and data_dir itself).
    train_by_dataset: data set -> ``TrainConfig`` fields set on that data set alone, on
      top of ``train``.
    bench_impls: conv implementations whose train and evaluation steps are timed, at the
      training batch (the runs' own compiled steps).
    bench_repeats: timed repeats per step (median reported).
    analysis_examples: test examples whose features the analyses use.
    cka_layers: feature names compared variant by variant (must be in every model).
    decomposition_layers: parameter paths of the anchor's kernels that are projected
      onto the spectrum (the standard model's 3x3 convs).
    decomposition_multipliers: depth multipliers of the projection grid.
  """
  name: str
  variants: tuple[Variant, ...]
  datasets: tuple[str, ...] = ("digits",)
  seeds: tuple[int, ...] = (0, 1, 2)
  train: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  train_by_dataset: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
  bench_impls: tuple[str, ...] = ("auto", "xla")
  bench_repeats: int = 10
  analysis_examples: int = 512
  cka_layers: tuple[str, ...] = ()
  decomposition_layers: tuple[str, ...] = ()
  decomposition_multipliers: tuple[int, ...] = (1, 2, 4, 9)

  def __post_init__(self):
    if not self.variants:
      raise ValueError(f"{self.name}: variants must not be empty")
    labels = [v.label for v in self.variants]
    if len(set(labels)) != len(labels):
      raise ValueError(f"{self.name}: variant labels {labels} must be unique")
    if not self.seeds or len(set(self.seeds)) != len(self.seeds):
      raise ValueError(f"{self.name}: seeds (={self.seeds}) must be distinct and non-empty")
    unknown = sorted(set(self.train_by_dataset) - set(self.datasets))
    if unknown:
      raise ValueError(f"{self.name}: train_by_dataset's data sets {unknown} must be among "
                       f"datasets (={self.datasets})")
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - set(_PER_RUN)
    for where, overrides in (("train", self.train), *(
        (f"train_by_dataset[{d!r}]", o) for d, o in self.train_by_dataset.items())):
      unknown = sorted(set(overrides) - fields)
      if unknown:
        raise ValueError(f"{self.name}: {where}'s keys {unknown} must be TrainConfig fields "
                         f"other than {_PER_RUN}")

  def train_config(self, dataset: str, variant: Variant, seed: int,
                   data_dir: str | None = None) -> TrainConfig:
    """One run's ``TrainConfig``: the data set's preset, then ``train``, then
    ``train_by_dataset[dataset]``, then the run's own variant and seed."""
    return default_config(dataset, **{**self.train, **self.train_by_dataset.get(dataset, {})},
                          conv=variant.conv, seed=seed, data_dir=data_dir)

  def narrowed(self, *, variants=None, seeds=None, epochs: int | None = None
               ) -> GranularityAblation:
    """The same ablation on fewer variants or seeds, or another number of epochs.

    Args:
      variants: spectrum points (e.g. 'dws:g=4') or labels (e.g. 'g=4 +pw') to keep,
        in the grid's order; None keeps all.
      seeds: the seeds to run; None keeps the experiment's.
      epochs: epochs of every training run on every data set; None keeps the presets.
        Runs with other epochs are other runs: give them their own results folder.
    """
    out = self
    if variants is not None:
      known = {_explicit(v.conv): v for v in self.variants}
      labels = {v.label: v for v in self.variants}
      keep = set()
      for text in map(str, variants):
        variant = labels.get(text) or known.get(_explicit(text))
        if variant is None:
          raise ValueError(f"variant (={text!r}) must be one of the grid's "
                           f"{[v.conv for v in self.variants]} or their labels")
        keep.add(variant.conv)
      out = dataclasses.replace(out, variants=tuple(v for v in self.variants if v.conv in keep))
    if seeds is not None:
      out = dataclasses.replace(out, seeds=tuple(seeds))
    if epochs is not None:
      validate.positive_int(epochs, "epochs")
      out = dataclasses.replace(out, train_by_dataset={
          d: {**self.train_by_dataset.get(d, {}), "epochs": epochs} for d in self.datasets})
    return out

  def results_name(self, dataset: str | None = None) -> str:
    """Folder name of the results on ``dataset`` (default the first): ``<name>_<dataset>``."""
    return f"{self.name}_{dataset or self.datasets[0]}"

  @property
  def anchor(self) -> Variant | None:
    """The standard-conv variant the decomposition starts from."""
    return next((v for v in self.variants if v.point.name == "standard"), None)


@dataclasses.dataclass(frozen=True)
class LayerSweep:
  """One layer at several spectrum points: analytic cost and measured forward/backward speed.

  Attributes:
    name: results go to ``results/<name>`` by default.
    schemes: label -> ``ConvSpec`` factory arguments: a spectrum point string.
    input_size, in_channels, out_channels, kernel_size: the layer.
    batch: batch of the timed calls.
    impls: conv implementations timed (each that supports the layer).
    repeats: timed repeats (median reported).
  """
  name: str
  schemes: tuple[Variant, ...]
  input_size: int
  in_channels: int
  out_channels: int
  kernel_size: int
  batch: int = 32
  impls: tuple[str, ...] = ("auto", "xla")
  repeats: int = 10

  def results_name(self, dataset: str | None = None) -> str:
    """Folder name of the results: the experiment's name (it trains on no data set)."""
    return self.name


@dataclasses.dataclass(frozen=True)
class PaperTables:
  """Published figures next to the library's own, computed without training.

  Attributes:
    name: results go to ``results/<name>`` by default.
    compute: () -> one record per printed figure (fields: 'run_id', 'kind', 'table',
      'title', 'row', 'quantity', 'paper_printed', 'ours', ...; see
      ``sepconv.report.paper``). Each run recomputes them all and replaces the records.
  """
  name: str
  compute: Callable[[], list[dict]]

  def results_name(self, dataset: str | None = None) -> str:
    """Folder name of the results: the experiment's name (it trains on no data set)."""
    return self.name
