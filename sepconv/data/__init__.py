"""Image classification data: digits (bundled), CIFAR-10/100 (local or downloaded), synthetic.

Every loader returns a ``Dataset`` of NHWC images in their stored dtype; normalisation
and augmentation run on device inside the jitted training step.
"""

from __future__ import annotations

import os

from sepconv.data.augment import augment, Augmentation
from sepconv.data.cifar import download_cifar, load_cifar, CIFAR10, CIFAR100
from sepconv.data.dataset import channel_stats, Dataset
from sepconv.data.digits import load_digits
from sepconv.data.folds import check_folds, fold_split
from sepconv.data.synthetic import load_synthetic

DATASETS = ("digits", "cifar10", "cifar100", "synthetic")


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, *,
                 download: bool = False) -> Dataset:
  """Loads a data set by name with its default augmentation.

  Args:
    name: one of ``DATASETS``. 'synthetic' is CIFAR-shaped (2,048 train, 512 test,
      32x32x3, 10 classes, seed 0); call ``load_synthetic`` for other shapes.
    data_dir: for CIFAR, the archive, its extracted folder, or a directory holding
      either; ignored by the others.
    download: for CIFAR, fetch the official archive into ``data_dir`` if absent.

  Returns:
    The ``Dataset``.
  """
  if name == "digits":
    return load_digits()
  if name == "synthetic":
    return load_synthetic()
  if name in ("cifar10", "cifar100"):
    if data_dir is None:
      raise ValueError(f"dataset {name!r} needs a data_dir (--data-dir): the archive, its "
                       f"extracted folder, or a directory to download into with --download")
    return load_cifar(name, data_dir, download=download)
  raise ValueError(f"dataset (={name!r}) must be one of {DATASETS}")


__all__ = [
    "Augmentation", "augment", "channel_stats", "check_folds", "CIFAR10", "CIFAR100", "Dataset",
    "DATASETS", "download_cifar", "fold_split", "load_cifar", "load_dataset", "load_digits",
    "load_synthetic",
]
