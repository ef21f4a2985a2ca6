"""What the job engine runs: ``Job``, the ``Runner`` protocol every experiment kind follows, logging.

An experiment kind (``sepconv.ablation.experiment``) plugs into the engine
(``sepconv.ablation.engine``) through a runner:

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
import sys
from pathlib import Path
from typing import Any, Protocol

from sepconv.ablation.experiment import Variant


@dataclasses.dataclass(frozen=True)
class Job:
  """One unit of work and the record it produces."""
  kind: str  # e.g. "train", "bench", "decomposition", "cka", "paper_cost"
  run_id: str
  variant: Variant | None = None
  seed: int | None = None
  layer: str | None = None  # for per-layer analyses
  payload: Any = None  # a computed record, for experiments that only compute


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
