"""Experiments as data, and the runner that turns them into records.

``experiment``: the definitions (``Variant``, ``GranularityAblation``, ``LayerSweep``).
``runner``: ``run(experiment, out_dir, ...)``, resumable and shardable.
"""

from sepconv.ablation.experiment import (GranularityAblation, LayerSweep, Variant, describe,
                                         family, spectrum_grid)
from sepconv.ablation.runner import parse_shard, run

__all__ = ["GranularityAblation", "LayerSweep", "Variant", "describe", "family", "parse_shard",
           "run", "spectrum_grid"]
