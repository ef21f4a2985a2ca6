"""Experiments as data, and the job engine that turns them into records.

* ``experiment``: the definitions (``Variant``, ``GranularityAblation``, ``LayerSweep``,
  ``PaperTables``).
* ``jobs``: ``Job``, the ``Runner`` protocol each experiment kind follows, ``RunOptions``.
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
from sepconv.ablation.jobs import Job, RunOptions

__all__ = ["GranularityAblation", "Job", "LayerSweep", "PaperTables", "RUNNERS", "RunOptions",
           "Variant", "parse_shard", "run", "runner_for", "spectrum_grid"]
