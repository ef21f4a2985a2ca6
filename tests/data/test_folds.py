"""Stratified k-fold splits: every image tested once per seed, classes balanced, seeded."""

from __future__ import annotations

import numpy as np
import pytest

from sepconv.data import channel_stats, fold_split, load_digits, load_synthetic
from sepconv.data.folds import check_folds, fold_indices


@pytest.fixture(scope="module")
def digits():
  return load_digits()


def _pool(dataset):
  return (np.concatenate([dataset.x_train, dataset.x_test]),
          np.concatenate([dataset.y_train, dataset.y_test]))


@pytest.mark.parametrize("seed", [0, 7])
def test_every_image_is_tested_exactly_once_per_seed(digits, seed):
  _, labels = _pool(digits)
  tested = []
  for fold in range(5):
    train, test = fold_indices(labels, 5, fold, seed)
    assert not set(train) & set(test) and len(train) + len(test) == 1797
    tested.append(test)
  assert sorted(np.concatenate(tested).tolist()) == list(range(1797))
  assert sorted(len(t) for t in tested) == [359, 359, 359, 360, 360]


def test_folds_are_stratified_class_counts_differ_by_at_most_one(digits):
  _, labels = _pool(digits)
  counts = np.stack([np.bincount(labels[fold_indices(labels, 5, f, 3)[1]], minlength=10)
                     for f in range(5)])
  assert (counts.max(axis=0) - counts.min(axis=0)).max() <= 1
  np.testing.assert_array_equal(counts.sum(axis=0), np.bincount(labels))


def test_the_seed_chooses_the_partition_and_the_same_seed_gives_the_same(digits):
  a, b = fold_split(digits, 5, 2, seed=1), fold_split(digits, 5, 2, seed=1)
  np.testing.assert_array_equal(a.x_test, b.x_test)
  np.testing.assert_array_equal(a.y_train, b.y_train)
  _, labels = _pool(digits)
  assert not np.array_equal(fold_indices(labels, 5, 2, 1)[1], fold_indices(labels, 5, 2, 2)[1])


def test_a_fold_holds_the_pools_images_and_its_training_parts_statistics(digits):
  images, labels = _pool(digits)
  train, test = fold_indices(labels, 5, 4, 0)
  split = fold_split(digits, 5, 4, 0)
  np.testing.assert_array_equal(split.x_train, images[train])
  np.testing.assert_array_equal(split.y_test, labels[test])
  assert (split.mean, split.std) == channel_stats(images[train])
  assert split.mean != digits.mean  # the fixed split's statistics are not reused
  assert (split.name, split.num_classes, split.augmentation, split.class_names) == (
      digits.name, digits.num_classes, digits.augmentation, digits.class_names)
  # Every fold of the 1,797 images trains on 1,437 or 1,438: 44 batches of 32 each.
  assert {fold_split(digits, 5, f, 0).num_train // 32 for f in range(5)} == {44}


def test_no_folds_is_the_data_set_itself(digits):
  assert fold_split(digits, 0, 0, 5) is digits


@pytest.mark.parametrize("folds, fold, message", [
    (1, 0, r"folds \(=1\) must be 0 \(the data set's own train/test split\) or >= 2"),
    (-2, 0, r"folds \(=-2\) must be a non-negative int"),
    (2.0, 0, r"folds \(=2.0\) must be a non-negative int"),
    (0, 1, r"fold \(=1\) must be 0 when folds is 0"),
    (5, 5, r"fold \(=5\) must be in \[0, folds\) \(folds = 5\)"),
    (5, -1, r"fold \(=-1\) must be a non-negative int"),
])
def test_bad_folds_are_one_line_errors(folds, fold, message):
  with pytest.raises(ValueError, match=message):
    check_folds(folds, fold)


def test_more_folds_than_the_smallest_class_are_refused():
  tiny = load_synthetic(num_train=12, num_test=4, image_shape=(4, 4, 1), num_classes=4)
  smallest = np.bincount(_pool(tiny)[1]).min()
  with pytest.raises(ValueError, match=rf"folds \(={smallest + 1}\) must not exceed the "
                                       rf"smallest class's images \(={smallest}\)"):
    fold_split(tiny, int(smallest) + 1, 0, 0)
