"""Benchmarks: conv layers across implementations, sweeps over group size, training steps.

Each timed case becomes one JSON record (config, timing statistics, analytic counts,
achieved rates against the device's roofline, provenance); tables are rendered from
the records alone by ``sepconv.report`` (``sepconv report lowering``).
"""

from sepconv.bench.config import LayerConfig, counts
from sepconv.bench.layer import BenchOptions, bench_layer, bench_sweep, sweep_group_sizes
from sepconv.bench.roofline import published_peaks, roofline

__all__ = ["LayerConfig", "counts", "BenchOptions", "bench_layer", "bench_sweep",
           "sweep_group_sizes", "published_peaks", "roofline"]
