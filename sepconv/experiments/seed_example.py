"""The worked example's layer across the spectrum: analytic cost and measured speed.

Run:      sepconv ablate seed_example            (results in results/seed_example/)
Hardware: any; the committed results name their device. About 11 minutes on a
          2-core CPU (XLA's native gradients of the narrow schemes dominate: up to minutes a call).
Shows:    weights and mult-adds of the design notes' five schemes and the plain grouped
          conv on 28x28x192 -> 32, 5x5 (``sepconv cost seed`` prints the same counts),
          next to forward and forward+backward time per convolution implementation:
          counted mult-adds against measured speed, per spatial group size.
"""

from sepconv import worked_example as w
from sepconv.ablation import LayerSweep, Variant

_NAMED = tuple(Variant(example.point, example.label) for example in w.examples())
# Spatial group size swept with a pointwise stage (any divisor of 192 works) and without
# one (32 outputs allow group sizes 6 * 2^j only).
_SWEEP = tuple(Variant(f"dws:g={g}") for g in (2, 8, 16, 32, 64, 192)) + tuple(
    Variant(f"grouped:g={g}") for g in (12, 24, 48, 96))

EXPERIMENT = LayerSweep(
    name="seed_example", schemes=_NAMED + _SWEEP, input_size=w.INPUT_SIZE,
    in_channels=w.IN_CHANNELS, out_channels=w.OUT_CHANNELS, kernel_size=w.KERNEL_SIZE,
    batch=16, impls=("auto", "xla"), repeats=5)
