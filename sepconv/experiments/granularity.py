"""The grouping-granularity ablation: how much of a standard conv each spectrum point keeps.

Run:      sepconv ablate granularity                       (digits, the embedded default)
          sepconv ablate granularity --dataset cifar10 --data-dir PATH
          (Colab TPU/GPU: experiments/granularity_colab.ipynb in the repository)
Hardware: digits: a 2-core CPU, about 6 minutes on a quiet machine, install included, on
          one pinned worker process per CPU (``sepconv ablate``'s default executor there;
          the time budget is in the results' tables; ``sepconv.ablation.estimate``
          predicts a sequential sweep before it starts).
          CIFAR-10: one accelerator, about an hour per seed.
Grid:     a shallow MobileNet v1 x0.25 (Howard et al. 2017, Table 5; 8 to 256 channels)
          whose every block is moved along the spectrum with one knob: the standard 3x3 conv
          (the anchor, g = C); MISSION.md's first way to close the gap, a grouped spatial
          stage + pointwise with spatial group size g = 1 (depthwise-separable), 2, 4, 8, 16,
          and a depth multiplier m = 2, 4 at g = 1; its second way, plain group convolution
          (no pointwise) at the same g. A group size at or above a layer's channels is dense
          there. Digits: 13 variants x 5 folds x 1 repeat (seed 0) x 8 epochs, repeated
          stratified 5-fold cross-validation over all 1,797 images: every image is tested
          once, every variant trains on the same folds, and each comparison pairs 5 folds of
          359-360 test images instead of 3 seeds on one fixed split of 360. Why: a sweep
          compiles each variant once (its folds share the step), so the budget of 10 minutes,
          install included, is training: 65 runs of 8 epochs fit it (about 7 minutes), 65
          of 12 only just (8.5), 130 of 6 not with a margin (9.7): scaled from the 3 x 12
          sweep's records, 396 s on a quiet machine. Measured on folds 0 and 2 (seed 0),
          depthwise-separable at 8 epochs ends 0.3-0.6 points below its 12-epoch accuracy,
          at 6 0.8, at 4 0.8-2.0; the standard conv at 6 is 0-0.8 below. A faster step buys
          repeats first (``seeds_by_dataset``). CIFAR: its official split, 3 seeds, paired
          by seed.
Measures: test accuracy (mean +- std over folds x seeds), params and mult-adds (paper
          convention), training-step and inference throughput per conv implementation,
          linear CKA of every variant against every other at several depths, effective
          rank per layer, a linear probe on the penultimate features, and the relative error
          of projecting the trained standard model's 3x3 kernels onto each point of the grid.
Expected: accuracy rises with g and with m towards the standard conv at a fraction of its
          mult-adds; the pointwise stage matters most at small g; representations of
          neighbouring g are most alike; projection error falls monotonically in g and m.
"""

from sepconv.ablation import GranularityAblation, Variant, spectrum_grid

GROUP_SIZES = (1, 2, 4, 8, 16)

EXPERIMENT = GranularityAblation(
    name="granularity",
    variants=spectrum_grid(GROUP_SIZES) + (Variant("dws:g=1,m=2"), Variant("dws:g=1,m=4")),
    datasets=("digits", "cifar10", "cifar100"),
    seeds=(0, 1, 2),
    seeds_by_dataset={"digits": (0,)},
    train={"model": "mobilenet_v1_shallow", "width_multiplier": 0.25},
    train_by_dataset={"digits": {"folds": 5, "epochs": 8},
                      "cifar10": {"epochs": 60, "folds": 0},
                      "cifar100": {"epochs": 60, "folds": 0}},
    bench_impls=("auto", "xla"),
    bench_repeats=10,
    analysis_examples=360,
    cka_layers=("block2", "block4", "block6", "block8", "penultimate"),
    decomposition_layers=("block3/spatial", "block5/spatial", "block8/spatial"),
)
