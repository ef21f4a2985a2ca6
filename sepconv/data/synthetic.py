"""A seeded synthetic data set of any image shape, for tests and benchmarks.

Each class has a fixed random prototype image; samples are the prototype plus
Gaussian noise, quantised to uint8 like real pixels. It is learnable (so a test can
see accuracy rise) but says nothing about real-image accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sepconv.data.augment import Augmentation
from sepconv.data.dataset import Dataset, channel_stats


def load_synthetic(
    *,
    num_train: int = 2048,
    num_test: int = 512,
    image_shape: Sequence[int] = (32, 32, 3),
    num_classes: int = 10,
    noise: float = 48.0,
    seed: int = 0,
    augmentation: Augmentation = Augmentation(),
) -> Dataset:
  """Prototype-plus-noise images, identical for identical arguments.

  Args:
    num_train: training images.
    num_test: test images.
    image_shape: (H, W, C); the default is CIFAR's 32x32x3.
    num_classes: number of classes (labels are balanced round-robin, then shuffled).
    noise: standard deviation of the per-pixel noise, in grey levels (0..255).
    seed: seed for prototypes, noise and labels.
    augmentation: training augmentation to attach.

  Returns:
    A ``Dataset`` named 'synthetic' with uint8 images.
  """
  image_shape = tuple(int(d) for d in image_shape)
  if len(image_shape) != 3 or min(image_shape) < 1:
    raise ValueError(f"image_shape (={image_shape}) must be three positive ints (H, W, C)")
  if num_train < 1 or num_test < 1 or num_classes < 2:
    raise ValueError(f"num_train (={num_train}) and num_test (={num_test}) must be >= 1 and "
                     f"num_classes (={num_classes}) >= 2")
  rng = np.random.default_rng(seed)
  prototypes = rng.uniform(48, 208, size=(num_classes, *image_shape))

  def split(n):
    labels = rng.permutation(np.arange(n) % num_classes).astype(np.int32)
    images = prototypes[labels] + rng.normal(0.0, noise, size=(n, *image_shape))
    return np.clip(np.rint(images), 0, 255).astype(np.uint8), labels

  x_train, y_train = split(num_train)
  x_test, y_test = split(num_test)
  mean, std = channel_stats(x_train)
  return Dataset(
      name="synthetic", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
      num_classes=num_classes, mean=mean, std=std, augmentation=augmentation)
