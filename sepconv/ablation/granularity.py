"""``GranularityAblation``: train, time, and compare a model at every variant; its definition and runner."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from sepconv import analysis, cost, validate
from sepconv.ablation import trained
from sepconv.ablation.grid import Variant, explicit
from sepconv.ablation.jobs import (BenchJob, CkaJob, DecompositionJob, Job, RunOptions, TrainJob,
                                   log)
from sepconv.conv import policy
from sepconv.records import RECORDS_FILE, read_records
from sepconv.data import fold_split, load_dataset
from sepconv.train import TrainConfig, default_config, train
from sepconv.train.loop import prepare
from sepconv.train.step import initial_state
from sepconv.train.timed import compiled_steps, time_steps


def recorded_plans(path: Path, conv: str | None = None) -> dict[str, dict[str, str]]:
  """Every plan the records in ``path`` ran (those of variant ``conv`` only, if given), merged."""
  merged: dict[str, dict[str, str]] = {}
  for record in read_records(path) if path.is_file() else ():
    if conv is None or (record.get("config") or {}).get("conv") == conv:
      for key, choices in (record.get("plans") or {}).items():
        merged.setdefault(key, {}).update(choices)
  return merged


def reference_plans(results_dir) -> dict[str, dict[str, str]]:
  """Every plan the train records in ``results_dir``/records.jsonl ran, merged."""
  path = Path(results_dir) / RECORDS_FILE
  if not path.is_file():
    raise FileNotFoundError(f"--replay-plans (={results_dir}) holds no {RECORDS_FILE} to replay")
  merged = recorded_plans(path)
  if not merged:
    raise ValueError(f"--replay-plans (={results_dir}): its records carry no plans to replay")
  return merged


# TrainConfig fields each run of an ablation sets itself.
_PER_RUN = ("dataset", "conv", "seed", "fold", "data_dir")


@dataclasses.dataclass(frozen=True)
class GranularityAblation:
  """Train, benchmark and compare a model at every variant.

  Attributes:
    name: results go to ``results/<name>_<dataset>`` by default.
    variants: the grid.
    datasets: data set per ``--dataset`` choice; the first is the default.
    seeds: one training run per (variant, seed), or per (variant, seed, fold) where the
      data set's ``folds`` (a ``train`` or ``train_by_dataset`` field) is k >= 2: repeated
      stratified k-fold cross-validation, the seed choosing the repeat's partition, so
      every variant sees the same folds and comparisons pair by (fold, seed).
    train: ``TrainConfig`` fields set on every data set, on top of its preset (model,
      width_multiplier, folds, ...; each run sets dataset, conv, seed, fold and data_dir
      itself).
    seeds_by_dataset: data set -> its own seeds instead of ``seeds`` (a cross-validated
      data set runs folds x seeds, so it may need fewer repeats).
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
  seeds_by_dataset: Mapping[str, tuple[int, ...]] = dataclasses.field(default_factory=dict)
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
    for where, seeds in (("seeds", self.seeds), *(
        (f"seeds_by_dataset[{d!r}]", s) for d, s in self.seeds_by_dataset.items())):
      if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"{self.name}: {where} (={seeds}) must be distinct and non-empty")
    unknown = sorted(set(self.seeds_by_dataset) - set(self.datasets))
    if unknown:
      raise ValueError(f"{self.name}: seeds_by_dataset's data sets {unknown} must be among "
                       f"datasets (={self.datasets})")
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
                   data_dir: str | None = None, fold: int = 0) -> TrainConfig:
    """One run's ``TrainConfig``: the data set's preset, then ``train``, then
    ``train_by_dataset[dataset]``, then the run's own variant, seed and fold."""
    return default_config(dataset, **{**self.train, **self.train_by_dataset.get(dataset, {})},
                          conv=variant.conv, seed=seed, fold=fold, data_dir=data_dir)

  def seeds_for(self, dataset: str) -> tuple[int, ...]:
    """The seeds run on ``dataset``: ``seeds_by_dataset[dataset]``, else ``seeds``."""
    return tuple(self.seeds_by_dataset.get(dataset, self.seeds))

  def folds(self, dataset: str) -> int:
    """The cross-validation folds on ``dataset`` (0: its own train/test split)."""
    return self.train_config(dataset, self.variants[0], self.seeds[0]).folds

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
      known = {explicit(v.conv): v for v in self.variants}
      labels = {v.label: v for v in self.variants}
      keep = set()
      for text in map(str, variants):
        variant = labels.get(text) or known.get(explicit(text))
        if variant is None:
          raise ValueError(f"variant (={text!r}) must be one of the grid's "
                           f"{[v.conv for v in self.variants]} or their labels")
        keep.add(variant.conv)
      out = dataclasses.replace(out, variants=tuple(v for v in self.variants if v.conv in keep))
    if seeds is not None:
      out = dataclasses.replace(out, seeds=tuple(seeds), seeds_by_dataset={})
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

  def runner(self, out_dir: Path, options: RunOptions = RunOptions()) -> GranularityRunner:
    """How the engine runs this experiment (``jobs.Runner``)."""
    return GranularityRunner(self, out_dir, options)


# Seconds of timed calls per measurement, past its minimum repeats (``sepconv.timing``):
# native grouped training steps take up to a second each on a 2-core CPU.
BENCH_BUDGET_S = 2.0


class GranularityRunner:
  """The jobs of one ablation on one data set, and how to run each (``jobs.Runner``)."""
  exclusive_kinds = (BenchJob.kind,)  # timings: run alone, after the other jobs
  analysis_kinds = (DecompositionJob.kind, CkaJob.kind)
  replaces_records = False

  def __init__(self, experiment: GranularityAblation, out_dir: Path,
               options: RunOptions = RunOptions()):
    self.dataset_name = options.dataset or experiment.datasets[0]
    if self.dataset_name not in experiment.datasets:
      raise ValueError(f"--dataset (={self.dataset_name!r}) must be one of {experiment.datasets} "
                       f"for experiment {experiment.name!r}")
    seeds = options.seeds if options.seeds is not None else experiment.seeds_for(self.dataset_name)
    experiment = experiment.narrowed(variants=options.variants, seeds=seeds,
                                     epochs=options.epochs)
    self.experiment = experiment
    self.name = experiment.name
    self.data_dir = options.data_dir
    self.out_dir = Path(out_dir)
    self.work_dir = Path(options.work_dir or Path("runs") / Path(out_dir).name)
    self.progress = options.progress
    self.replay = reference_plans(options.replay) if options.replay else None
    self.folds = experiment.folds(self.dataset_name)
    self._dataset = None
    self._split: tuple[tuple[int, int], object] | None = None

  @property
  def dataset(self):
    """The whole data set, as loaded (its own split)."""
    if self._dataset is None:
      self._dataset = load_dataset(self.dataset_name, self.data_dir)
    return self._dataset

  def data(self, seed: int, fold: int = 0):
    """The data set of the run at (seed, fold): fold ``fold`` of the seed's partition, or
    the data set itself without folds."""
    if not self.folds:
      return self.dataset
    if self._split is None or self._split[0] != (seed, fold):  # one at a time: CIFAR is large
      self._split = ((seed, fold), fold_split(self.dataset, self.folds, fold, seed))
    return self._split[1]

  def fold_range(self) -> range:
    """The folds each seed runs: ``range(folds)``, or ``range(1)`` (fold 0) without."""
    return range(max(self.folds, 1))

  def _id(self, *parts) -> str:
    return "/".join([self.name, self.dataset_name, *map(str, parts)])

  def jobs(self) -> list[Job]:
    e = self.experiment
    jobs: list[Job] = [TrainJob(self._id(v.conv, f"seed={s}", *self._fold_part(f)), seed=s,
                                variant=v, folds=self.folds, fold=f)
                       for v in e.variants for s in e.seeds for f in self.fold_range()]
    jobs += [BenchJob(self._id(v.conv, "bench"), variant=v) for v in e.variants]
    seed = e.seeds[0]
    if e.anchor is not None:
      jobs += [DecompositionJob(self._id("decomposition", layer, f"seed={seed}"), seed=seed,
                                variant=e.anchor, layer=layer)
               for layer in e.decomposition_layers]
    jobs += [CkaJob(self._id("cka", layer, f"seed={seed}"), seed=seed, layer=layer)
             for layer in e.cka_layers]
    return jobs

  # Shared pieces.

  def _fold_part(self, fold: int) -> list[str]:
    """The run id's and paths' fold part: none without folds."""
    return [f"fold={fold}"] if self.folds else []

  def config(self, variant: Variant, seed: int, fold: int = 0):
    """The TrainConfig of one run."""
    return self.experiment.train_config(self.dataset_name, variant, seed, self.data_dir, fold)

  def _run_name(self, variant: Variant, seed: int, fold: int) -> str:
    return f"{variant.slug}-seed{seed}" + (f"-fold{fold}" if self.folds else "")

  def run_dir(self, variant: Variant, seed: int, fold: int = 0) -> Path:
    return self.work_dir / "runs" / self._run_name(variant, seed, fold)

  def features_path(self, variant: Variant, seed: int, fold: int = 0) -> Path:
    return self.work_dir / "features" / f"{self._run_name(variant, seed, fold)}.npz"

  def _config_fields(self, variant: Variant, config) -> dict:
    return {**variant.fields(), "folds": config.folds, "fold": config.fold,
            "model": config.model, "dataset": self.dataset_name,
            "width_multiplier": config.width_multiplier, "epochs": config.epochs,
            "batch_size": config.batch_size, "optimizer": config.optimizer, "lr": config.lr,
            "weight_decay": config.weight_decay, "impl": config.impl}

  def _cost(self, config) -> dict:
    from sepconv.models import model_cost
    d = self.dataset
    total = cost.summarize(model_cost(config.model, num_classes=d.num_classes, conv=config.conv,
                                      width_multiplier=config.width_multiplier,
                                      input_size=d.input_shape[0], in_channels=d.input_shape[2]))
    return {"params": total.params, "mult_adds": total.mult_adds,
            "params_with_bn": total.params_with_bn, "mult_adds_valid": total.mult_adds_valid}

  # Jobs.

  def run_job(self, job: Job) -> dict | None:
    with policy.replaying(self.replay):
      match job:
        case TrainJob():
          return self._train(job)
        case BenchJob():
          return self._bench(job)
        case DecompositionJob():
          return self._decomposition(job)
        case CkaJob():
          return self._cka(job)
    raise TypeError(f"job (={job!r}) must be a TrainJob, BenchJob, DecompositionJob or CkaJob")

  def _train(self, job: TrainJob) -> dict:
    d, e = self.data(job.seed, job.fold), self.experiment
    config = self.config(job.variant, job.seed, job.fold)
    run_dir = self.run_dir(job.variant, job.seed, job.fold)
    measuring = policy.MEASURING["seconds"]
    result = train(config, run_dir, dataset=d, progress=self.progress)
    model, variables = trained.restore(config, run_dir, d)
    # At the training batch: the convolutions (and their plans) are the training run's.
    batch = config.batch_size
    test_feats = trained.features(model, variables, d, d.x_test, batch_size=batch)
    feats = {name: f[:e.analysis_examples] for name, f in test_feats.items()}
    path = self.features_path(job.variant, job.seed, job.fold)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **feats)
    train_pen = trained.features(model, variables, d, d.x_train, batch_size=batch)["penultimate"]
    probe = analysis.linear_probe(train_pen, d.y_train, test_feats["penultimate"], d.y_test,
                                  num_classes=d.num_classes)
    ranks = {name: analysis.effective_rank(f) for name, f in feats.items() if name != "logits"}
    bench_compile = self._compile_bench_ahead(job, config, d)
    return {
        "config": self._config_fields(job.variant, config),
        "metrics": {
            "test_accuracy": result["test_accuracy"], "train_accuracy": result["train_accuracy"],
            "test_loss": result["test_loss"], "train_seconds": result["train_seconds"],
            "train_images_per_s": result["images_per_second"],
            "compile_seconds": result["compile_seconds"],
            "autotune_seconds": policy.MEASURING["seconds"] - measuring,
            "probe_test_accuracy": probe["test_accuracy"],
            "probe_train_accuracy": probe["train_accuracy"], "effective_rank": ranks,
            "bench_compile_seconds": bench_compile},
        "cost": self._cost(config),
        "plans": trained.plans(config, d),
    }

  def _compile_bench_ahead(self, job: TrainJob, config, d) -> float:
    """Seconds spent compiling, for the run the variant's benchmark times (seed 0's fold
    0), the steps of the other benchmarked implementations. Done here, beside the other
    jobs, it leaves them compiled in this worker and in the persistent compilation cache,
    so the benchmark, which runs alone, spends its time timing."""
    e = self.experiment
    if (job.seed, job.fold) != (e.seeds[0], 0):
      return 0.0
    start = time.perf_counter()
    state = self._initial_state(config, d)  # only lowered against: no step runs on it
    for impl in e.bench_impls:
      if impl != config.impl:
        compiled_steps(dataclasses.replace(config, impl=impl), d, state=state)
    return time.perf_counter() - start

  @staticmethod
  def _initial_state(config, d):
    """``config``'s initial state, whose initialisation its training compiled: the state
    the steps of every benchmarked implementation start from (parameters do not depend on
    the implementation)."""
    setup = prepare(config, d)
    return initial_state(setup.spec, d.input_shape, config.seed)

  def _bench(self, job: BenchJob) -> dict:
    """Median training-step and evaluation-step times per conv implementation.

    The steps are the training run's own (``sepconv.train.timed``), at its batch, with the
    plans its runs recorded (in this process they are already compiled; elsewhere the
    persistent compilation cache has them, and nothing is tuned again).
    """
    e = self.experiment
    d, config = self.data(e.seeds[0]), self.config(job.variant, e.seeds[0])
    batch = config.batch_size
    timings = {}
    trained = None if self.replay else recorded_plans(self.out_dir / RECORDS_FILE,
                                                       job.variant.conv)
    for impl in e.bench_impls:
      state = self._initial_state(config, d)  # one each: time_steps donates it
      with policy.replaying(trained or None):
        step, infer = time_steps(dataclasses.replace(config, impl=impl), d, warmup=2,
                                 repeats=e.bench_repeats, budget_s=BENCH_BUDGET_S,
                                 state=state)
      timings[impl] = {"train_step_ms": step.median_ms, "infer_ms": infer.median_ms,
                       "train_images_per_s": batch / step.median_ms * 1e3,
                       "infer_images_per_s": batch / infer.median_ms * 1e3,
                       "compile_s": step.compile_ms / 1e3}
    return {"config": {**self._config_fields(job.variant, config), "bench_batch": batch},
            "timings": timings, "cost": self._cost(config)}

  def _decomposition(self, job: DecompositionJob) -> dict | None:
    """Projects the trained standard model's kernel at one layer onto the spectrum."""
    e = self.experiment
    run_dir = self.run_dir(job.variant, job.seed)
    if not (run_dir / "checkpoints").exists():
      return self._defer(job, f"the standard run {run_dir} is not in this work dir")
    config = self.config(job.variant, job.seed)
    _, variables = trained.restore(config, run_dir, self.data(job.seed))
    layer = job.layer
    node = variables["params"]
    for key in layer.split("/"):
      node = node[key]
    kernel = np.asarray(node["kernel"], np.float64)
    c_in = kernel.shape[2]
    sizes = [g for g in _powers_of_two(c_in) if c_in % g == 0]
    points = [(g, m, True) for g in sizes for m in e.decomposition_multipliers]
    points += [(g, None, False) for g in sizes if kernel.shape[3] % (c_in // g) == 0]
    return {"config": {"model": config.model, "dataset": self.dataset_name,
                       "conv": job.variant.conv, "width_multiplier": config.width_multiplier},
            "decomposition": {"layer": layer, "kernel_shape": list(kernel.shape),
                              "errors": analysis.decomposition_errors(kernel, points)}}

  def _cka(self, job: CkaJob) -> dict | None:
    """Variant-by-variant CKA at one layer, on the same test examples."""
    e = self.experiment
    layer = job.layer
    missing = [str(self.features_path(v, job.seed)) for v in e.variants
               if not self.features_path(v, job.seed).exists()]
    if missing:
      return self._defer(job, f"features missing: {', '.join(missing)}")
    feats = {}
    for v in e.variants:
      with np.load(self.features_path(v, job.seed)) as f:
        feats[v.label] = {layer: f[layer]}
    labels = list(feats)
    matrix = analysis.variant_cka(feats)[layer]
    config = self.config(e.variants[0], job.seed)  # model and width: every variant's
    return {"config": {"model": config.model, "dataset": self.dataset_name, "layer": layer,
                       "width_multiplier": config.width_multiplier,
                       "examples": int(feats[labels[0]][layer].shape[0])},
            "cka": analysis.cka_record(matrix, labels=labels, layers=[layer])}

  def _defer(self, job: Job, why: str) -> None:
    log(f"deferred {job.run_id}: {why}; run again where every run's work dir is present")
    return None


def _powers_of_two(limit: int) -> list[int]:
  out, g = [], 1
  while g <= limit:
    out.append(g)
    g *= 2
  return out

