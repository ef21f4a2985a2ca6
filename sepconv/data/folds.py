"""Stratified k-fold cross-validation splits of a ``Dataset``: repeated k-fold's data side.

A data set's training and test images are pooled and cut into ``folds`` class-stratified
parts by scikit-learn's ``StratifiedKFold(shuffle=True, random_state=seed)``; fold ``f``
holds part ``f`` out as its test split and trains on the rest. Every image is tested
exactly once per seed, each part's class counts differ by at most one across parts, and
the same (folds, seed) gives the same parts, whoever asks: variants trained on the same
(fold, seed) see the same images, so their comparison is paired. The seed of the
partition is the training seed (one seed, one repeat of the k-fold). Normalisation
statistics come from the fold's training part alone.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sepconv import validate
from sepconv.data.dataset import Dataset, channel_stats


def check_folds(folds, fold) -> None:
  """``ValueError`` unless ``folds`` is 0 (the fixed split) or >= 2, and 0 <= fold < folds."""
  validate.nonnegative_int(folds, "folds")
  if folds == 1:
    raise ValueError("folds (=1) must be 0 (the data set's own train/test split) or >= 2")
  validate.nonnegative_int(fold, "fold")
  if folds == 0 and fold != 0:
    raise ValueError(f"fold (={fold}) must be 0 when folds is 0 (the data set's own split)")
  if folds and fold >= folds:
    raise ValueError(f"fold (={fold}) must be in [0, folds) (folds = {folds})")


def fold_indices(labels: np.ndarray, folds: int, fold: int, seed: int
                 ) -> tuple[np.ndarray, np.ndarray]:
  """(train indices, test indices), each ascending, of fold ``fold`` of ``labels``' pool."""
  from sklearn.model_selection import StratifiedKFold
  check_folds(folds, fold)
  if folds == 0:
    raise ValueError("folds (=0) names no cross-validation split")
  labels = np.asarray(labels)
  counts = np.bincount(labels) if labels.size else np.zeros(0, int)
  smallest = int(counts[counts > 0].min()) if counts.size else 0
  if smallest < folds:
    raise ValueError(f"folds (={folds}) must not exceed the smallest class's images "
                     f"(={smallest})")
  splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
  train, test = list(splitter.split(np.zeros(len(labels)), labels))[fold]
  return np.sort(train), np.sort(test)


def fold_split(dataset: Dataset, folds: int, fold: int, seed: int) -> Dataset:
  """Fold ``fold`` of ``folds`` over ``dataset``'s pooled images, partitioned by ``seed``.

  Args:
    dataset: the data set; its train and test images are pooled (train first).
    folds: parts of the pool; 0 returns ``dataset`` unchanged (its own split).
    fold: the part held out as the test split, 0 <= fold < folds.
    seed: selects the partition (``StratifiedKFold``'s ``random_state``).

  Returns:
    A ``Dataset`` with the same name, classes and augmentation, trained on the other
    parts, with mean and std of its own training images.
  """
  check_folds(folds, fold)
  if folds == 0:
    return dataset
  images = np.concatenate([dataset.x_train, dataset.x_test])
  labels = np.concatenate([dataset.y_train, dataset.y_test])
  train, test = fold_indices(labels, folds, fold, seed)
  x_train = images[train]
  mean, std = channel_stats(x_train)
  return dataclasses.replace(dataset, x_train=x_train, y_train=labels[train],
                             x_test=images[test], y_test=labels[test], mean=mean, std=std)
