"""Experiments as data, and the job engine that turns them into records.

* ``experiment``: the definitions (``Variant``, ``GranularityAblation``, ``LayerSweep``,
  ``PaperTables``).
* ``jobs``: the job kinds (``TrainJob``, ``BenchJob``, ...), the ``Runner`` protocol each
  experiment kind follows, ``RunOptions``, and ``Status``: what a record of a job that did
  not finish says.
* ``engine``: ``run(experiment, out_dir, ...)``: jobs, shards, resume, records; the table
  of runners (``RUNNERS``).
* executors (where the jobs run; the engine's driver alone writes records): ``executor``
  (the protocol, the worker function, ``Sequential``), ``processes`` (a local pool),
  ``ray_executor`` (Ray tasks, one accelerator each); ``lock`` (one runner per results
  folder); ``progress`` (the sweep's one-line progress).
* runners: ``granularity`` (train, benchmark, analyse), ``layer_sweep`` (one layer's cost
  and speed), ``paper`` (published figures recomputed); ``trained`` reads finished runs.
"""

from sepconv.ablation.engine import RUNNERS, parse_shard, run, runner_for
from sepconv.ablation.experiment import (GranularityAblation, LayerSweep, PaperTables, Variant,
                                         spectrum_grid)
from sepconv.ablation.jobs import Job, RunOptions, Status

__all__ = ["GranularityAblation", "Job", "LayerSweep", "PaperTables", "RUNNERS", "RunOptions",
           "Status", "Variant", "parse_shard", "run", "runner_for", "spectrum_grid"]
