"""Representational analysis: what each point of the convolution spectrum can express.

* ``cka``: linear CKA, full batch and the unbiased minibatch estimator, and
  layer-by-layer / variant-by-variant matrices from dicts of named features.
* ``decompose``: least-squares projection of a standard conv kernel onto grouped,
  depthwise-separable and grouped-spatial + pointwise points, with factors in
  Flax kernel layout for initialisation.
* ``rank``: effective rank and participation ratio of a layer's features.
* ``probe``: deterministic linear probe (closed-form ridge classifier).

All are pure functions of arrays.
"""

from sepconv.analysis.cka import (MinibatchCKA, cka_matrix, cka_record, linear_cka,
                                  minibatch_cka, variant_cka)
from sepconv.analysis.decompose import (Projection, compose, decomposition_errors,
                                        grouped_to_dense, project, project_grouped,
                                        project_separable)
from sepconv.analysis.probe import fit_ridge_classifier, linear_probe, predict
from sepconv.analysis.rank import effective_rank, participation_ratio, singular_values

__all__ = [
    "MinibatchCKA", "cka_matrix", "cka_record", "linear_cka", "minibatch_cka", "variant_cka",
    "Projection", "compose", "decomposition_errors", "grouped_to_dense", "project",
    "project_grouped", "project_separable",
    "fit_ridge_classifier", "linear_probe", "predict",
    "effective_rank", "participation_ratio", "singular_values",
]
