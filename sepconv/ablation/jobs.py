"""What the job engine runs: the job kinds, the ``Runner`` protocol, a record's ``Status``, logging.

Each job kind is a frozen dataclass holding exactly what that kind needs (``TrainJob``,
``BenchJob``, ...); a runner dispatches on the type.

An experiment kind (a frozen definition such as ``GranularityAblation``) plugs into the
engine (``sepconv.ablation.engine``) through its ``runner(out_dir, options)`` method,
which returns a runner:

* ``name``: the experiment's name, stored in every record.
* ``analysis_kinds``: job kinds that read other jobs' outputs (cross-run analyses); they
  run after the grid, on shard 0 only, and may be deferred.
* ``exclusive_kinds``: job kinds that time things; every executor runs them alone, one at
  a time, after the other grid jobs (optional; default none).
* ``replaces_records``: True for experiments that only compute (seconds, deterministic):
  each run recomputes every record and replaces the file, instead of resuming.
* ``jobs()``: every job of the experiment, in a fixed order.
* ``run_job(job)``: the job's record fields (``config``, ``metrics``, ...), or None to
  defer it (its inputs are not here); the engine adds run_id, kind, seed, provenance
  and timing, and appends the record.
"""

from __future__ import annotations

import dataclasses
import enum
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol

from sepconv.ablation.grid import Variant
from sepconv.records import schema


class Status(enum.StrEnum):
  """The ``"status"`` of a record whose job did not finish (a finished job's record has none).

  Each status is counted apart in a run's summary, and any of them makes ``sepconv ablate``
  exit 1. A failed job's record does not count as done: a later run retries it. A diverged
  one does (its training is deterministic, so a rerun diverges again): tables and
  comparisons leave it out and name it.
  """
  FAILED = schema.FAILED  # the job raised; "error" names the error, "traceback" where it was
  DIVERGED = schema.DIVERGED  # its training's loss or parameters went non-finite


# Every status value: a record whose "status" is one of these is of a job that did not finish.
STATUSES: tuple[str, ...] = tuple(s.value for s in Status)
# Those whose jobs a later run runs again.
RETRIED: tuple[str, ...] = (Status.FAILED.value,)


@dataclasses.dataclass(frozen=True)
class Job:
  """One unit of work and the record it produces; each kind is a subclass naming its ``kind``."""
  run_id: str
  kind: ClassVar[str] = ""

  def labels(self) -> dict:
    """Fields that name the job in its record besides run_id and kind (its seed, if any)."""
    return {}

  def identity(self) -> dict:
    """What names the job in a record of it that carries no result (``Status``)."""
    return self.labels()

  @property
  def affinity(self) -> Any:
    """Jobs of equal affinity (not None) share what a worker process keeps between jobs
    (a variant's compiled steps): executors with several workers run them on one where
    they can."""
    return None


@dataclasses.dataclass(frozen=True)
class SeededJob(Job):
  """A job of one training seed (its record carries ``"seed"``)."""
  seed: int

  def labels(self) -> dict:
    return {"seed": self.seed}


@dataclasses.dataclass(frozen=True)
class TrainJob(SeededJob):
  """Train one variant at one seed (and fold of ``folds``; 0 and 0: the data set's own split),
  then evaluate, probe and keep its features."""
  variant: Variant
  folds: int = 0
  fold: int = 0
  kind: ClassVar[str] = "train"

  def identity(self) -> dict:
    return {**self.labels(), "config": {**self.variant.fields(), "folds": self.folds,
                                        "fold": self.fold}}

  @property
  def affinity(self) -> Any:
    return self.variant


@dataclasses.dataclass(frozen=True)
class BenchJob(Job):
  """Time one variant's convolutions (a training and evaluation step, or one layer)."""
  variant: Variant
  kind: ClassVar[str] = "bench"

  @property
  def affinity(self) -> Any:
    return self.variant  # timed where the variant's steps were compiled


@dataclasses.dataclass(frozen=True)
class DecompositionJob(SeededJob):
  """Project one layer of a trained run's kernels onto the spectrum."""
  variant: Variant
  layer: str  # the kernel's parameter path, e.g. 'block3/spatial'
  kind: ClassVar[str] = "decomposition"


@dataclasses.dataclass(frozen=True)
class CkaJob(SeededJob):
  """Compare every variant's features at one layer (linear CKA)."""
  layer: str  # a named feature, e.g. 'penultimate'
  kind: ClassVar[str] = "cka"


@dataclasses.dataclass(frozen=True)
class FigureJob(Job):
  """A figure computed without training: ``record`` holds its fields (and its ``kind``)."""
  record: Mapping[str, Any]

  @property
  def kind(self) -> str:  # type: ignore[override]
    return self.record["kind"]


@dataclasses.dataclass(frozen=True)
class RunOptions:
  """How one invocation runs an experiment (the command line's flags)."""
  dataset: str | None = None
  data_dir: str | None = None
  work_dir: Path | None = None
  progress: bool = True
  seeds: tuple[int, ...] | None = None
  variants: tuple[str, ...] | None = None  # a subset of the grid (points or labels)
  epochs: int | None = None  # every training run's epochs, instead of the presets
  replay: Path | None = None  # a results folder whose recorded plans 'auto' runs again


def refuse_training_options(options: RunOptions, name: str) -> None:
  """ValueError for options only an experiment that trains can use."""
  given = [flag for flag, value in (("--seeds", options.seeds), ("--variant", options.variants),
                                    ("--epochs", options.epochs), ("--dataset", options.dataset),
                                    ("--replay-plans", options.replay))
           if value is not None]
  if given:
    raise ValueError(f"{', '.join(given)} only apply to experiments that train, and "
                     f"experiment {name!r} does not")


class Runner(Protocol):
  """What the engine needs of an experiment kind (see the module docstring)."""
  name: str
  analysis_kinds: tuple[str, ...]
  replaces_records: bool
  # Optional: exclusive_kinds: tuple[str, ...] (see the module docstring).

  def jobs(self) -> list[Job]: ...

  def run_job(self, job: Job) -> dict | None: ...


_LOGGING = {"enabled": True}


def logging_enabled(enabled: bool) -> bool:
  """Turns ``log`` on or off for this process (``--quiet`` keeps stderr clean); returns
  the previous setting."""
  previous, _LOGGING["enabled"] = _LOGGING["enabled"], bool(enabled)
  return previous


def log(message: str) -> None:
  """One progress line on stderr (unless turned off by ``logging_enabled``)."""
  if _LOGGING["enabled"]:
    print(f"[ablate] {message}", file=sys.stderr, flush=True)
