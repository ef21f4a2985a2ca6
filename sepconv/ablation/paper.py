"""``PaperTables``: published figures recomputed, one record per printed figure; definition and runner."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from sepconv.ablation.jobs import FigureJob, RunOptions, refuse_training_options


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

  def runner(self, out_dir: Path, options: RunOptions = RunOptions()) -> PaperTablesRunner:
    """How the engine runs this experiment (``jobs.Runner``)."""
    return PaperTablesRunner(self, out_dir, options)


class PaperTablesRunner:
  """Computes every figure (plain integers, seconds) and replaces the records each run."""
  analysis_kinds = ()
  replaces_records = True

  def __init__(self, experiment: PaperTables, out_dir: Path, options: RunOptions = RunOptions()):
    refuse_training_options(options, experiment.name)
    self.experiment = experiment
    self.name = experiment.name

  def jobs(self) -> list[FigureJob]:
    return [FigureJob(r["run_id"], record=r) for r in self.experiment.compute()]

  def run_job(self, job: FigureJob) -> dict:
    return {k: v for k, v in job.record.items() if k not in ("run_id", "kind", "experiment")}
