"""scikit-learn's handwritten digits: 1,797 real 8x8 images bundled with sklearn.

The UCI optical-recognition digits (Alpaydin & Kaynak 1998), as shipped by
``sklearn.datasets.load_digits``: 16-level grey values 0..16, 10 classes, no download.
The split is fixed for every run and every seed: stratified by class,
``random_state=0``, 1,437 training and 360 test images (about 80/20).
"""

from __future__ import annotations

import numpy as np

from sepconv.data.augment import Augmentation
from sepconv.data.dataset import Dataset, channel_stats

NUM_TEST = 360  # images held out; 1,797 - 360 = 1,437 train
SPLIT_SEED = 0  # fixed: the split never moves with the training seed


def load_digits(augmentation: Augmentation = Augmentation()) -> Dataset:
  """The digits data set, (N, 8, 8, 1) uint8 grey levels 0..16, fixed stratified split.

  Args:
    augmentation: training augmentation; none by default (8x8 digits leave no room
      to crop, and a flip changes a digit's meaning). ``Augmentation(pad=1)`` gives
      one-pixel random shifts.

  Returns:
    A ``Dataset`` named 'digits' with 1,437 training and 360 test images.
  """
  from sklearn.datasets import load_digits as sklearn_digits
  from sklearn.model_selection import train_test_split

  bunch = sklearn_digits()
  images = bunch.images.astype(np.uint8)[..., None]  # exact: grey levels are integers 0..16
  labels = bunch.target.astype(np.int32)
  x_train, x_test, y_train, y_test = train_test_split(
      images, labels, test_size=NUM_TEST, stratify=labels, random_state=SPLIT_SEED)
  mean, std = channel_stats(x_train)
  return Dataset(
      name="digits", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
      num_classes=10, mean=mean, std=std, augmentation=augmentation,
      class_names=tuple(str(d) for d in range(10)))
