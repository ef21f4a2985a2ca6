"""Running ``PaperTables``: published figures recomputed, one record per printed figure."""

from __future__ import annotations

from pathlib import Path

from sepconv.ablation.experiment import PaperTables
from sepconv.ablation.jobs import FigureJob, RunOptions, refuse_training_options


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
