"""Experiments as data, and the job engine that turns them into records.

* ``experiment``: the definitions (``Variant``, ``GranularityAblation``, ``LayerSweep``,
  ``PaperTables``).
* ``jobs``: ``Job``, the ``Runner`` protocol each experiment kind follows, ``RunOptions``.
* ``engine``: ``run(experiment, out_dir, ...)``: jobs, shards, resume, records; the table
  of runners (``RUNNERS``).
* runners: ``granularity`` (train, benchmark, analyse), ``layer_sweep`` (one layer's cost
  and speed), ``paper`` (published figures recomputed); ``trained`` reads finished runs.
"""

from sepconv.ablation.engine import RUNNERS, parse_shard, run, runner_for
from sepconv.ablation.experiment import (GranularityAblation, LayerSweep, PaperTables, Variant,
                                         spectrum_grid)
from sepconv.ablation.jobs import Job, RunOptions

__all__ = ["GranularityAblation", "Job", "LayerSweep", "PaperTables", "RUNNERS", "RunOptions",
           "Variant", "parse_shard", "run", "runner_for", "spectrum_grid"]
