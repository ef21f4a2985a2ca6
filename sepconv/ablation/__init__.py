"""Experiments as data, and the job engine that turns them into records.

* ``grid``: ``Variant`` (one spectrum point and its label) and ``spectrum_grid``.
* experiment kinds, each a frozen definition beside the runner it builds
  (``definition.runner(out_dir, options)``): ``granularity`` (``GranularityAblation``:
  train, benchmark, analyse), ``layer_sweep`` (``LayerSweep``: one layer's cost and
  speed), ``paper`` (``PaperTables``: published figures recomputed); ``trained`` reads
  finished runs.
* ``jobs``: the job kinds (``TrainJob``, ``BenchJob``, ...), the ``Runner`` protocol each
  experiment kind follows, ``RunOptions``, and ``Status``: what a record of a job that did
  not finish says.
* ``engine``: ``run(experiment, out_dir, ...)``: jobs, shards, resume, records.
* ``session``: ``ablate``: run, render and compare with the committed reference, as
  ``sepconv ablate`` does.
* executors (where the jobs run; the engine's driver alone writes records): ``executor``
  (the protocol, the worker function, the one failure path, ``Sequential``),
  ``processes`` (a local pool), ``ray_executor`` (Ray tasks, one accelerator each);
  ``lock`` (one runner per results folder); ``progress`` (the sweep's one-line progress).
"""

from sepconv.ablation.engine import parse_shard, run, runner_for
from sepconv.ablation.granularity import GranularityAblation
from sepconv.ablation.grid import Variant, spectrum_grid
from sepconv.ablation.jobs import Job, RunOptions, Status
from sepconv.ablation.layer_sweep import LayerSweep
from sepconv.ablation.paper import PaperTables

__all__ = ["GranularityAblation", "Job", "LayerSweep", "PaperTables", "RunOptions", "Status",
           "Variant", "parse_shard", "run", "runner_for", "spectrum_grid"]
