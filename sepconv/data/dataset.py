"""The ``Dataset`` record every loader returns, and on-device normalisation."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from sepconv.data.augment import Augmentation


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
  """An image classification data set held in host memory as NHWC arrays.

  Images stay in their compact stored dtype (uint8 pixels for CIFAR and digits),
  so a whole CIFAR split costs 150 MB, not 600 MB; ``normalize`` turns a batch into
  float32 zero-mean unit-variance inputs on device, inside the jitted step.

  Attributes:
    name: short name, e.g. 'digits', 'cifar10'.
    x_train: (N_train, H, W, C) images in stored units.
    y_train: (N_train,) int32 labels in [0, num_classes).
    x_test: (N_test, H, W, C) images in stored units.
    y_test: (N_test,) int32 labels.
    num_classes: number of classes.
    mean: per-channel mean of the training images, in stored units.
    std: per-channel standard deviation of the training images, in stored units.
    augmentation: the training-time augmentation this data set calls for.
    class_names: optional label names, index = label.
  """

  name: str
  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  num_classes: int
  mean: tuple[float, ...]
  std: tuple[float, ...]
  augmentation: Augmentation = Augmentation()
  class_names: tuple[str, ...] | None = None

  def __post_init__(self):
    for field in ("y_train", "y_test"):  # one label dtype, so the step compiles once
      object.__setattr__(self, field, np.asarray(getattr(self, field), np.int32))
    for split, x, y in (("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test)):
      if x.ndim != 4:
        raise ValueError(f"{self.name}: x_{split} shape (={x.shape}) must be (N, H, W, C)")
      if y.shape != (x.shape[0],):
        raise ValueError(f"{self.name}: y_{split} shape (={y.shape}) must be ({x.shape[0]},)")
      if y.size and (y.min() < 0 or y.max() >= self.num_classes):
        raise ValueError(f"{self.name}: y_{split} labels span [{y.min()}, {y.max()}], expected "
                         f"[0, {self.num_classes - 1}]")
    if self.x_train.shape[1:] != self.x_test.shape[1:]:
      raise ValueError(f"{self.name}: train images {self.x_train.shape[1:]} and test images "
                       f"{self.x_test.shape[1:]} differ in shape")
    channels = self.x_train.shape[-1]
    if len(self.mean) != channels or len(self.std) != channels:
      raise ValueError(f"{self.name}: mean/std have {len(self.mean)}/{len(self.std)} entries, "
                       f"expected one per channel (={channels})")

  @property
  def input_shape(self) -> tuple[int, int, int]:
    """(H, W, C) of one image."""
    return tuple(int(d) for d in self.x_train.shape[1:])

  @property
  def num_train(self) -> int:
    return int(self.x_train.shape[0])

  @property
  def num_test(self) -> int:
    return int(self.x_test.shape[0])

  def normalize(self, x: jax.Array) -> jax.Array:
    """Stored-unit images to float32 with the training split's per-channel mean and std."""
    return normalize(x, self.mean, self.std)


def normalize(x: jax.Array, mean: tuple[float, ...], std: tuple[float, ...]) -> jax.Array:
  """(x - mean) / std per channel (last axis), in float32."""
  shape = (1,) * (x.ndim - 1) + (-1,)  # explicit: tests run with rank promotion raising
  mean = jnp.asarray(mean, jnp.float32).reshape(shape)
  std = jnp.asarray(std, jnp.float32).reshape(shape)
  return (x.astype(jnp.float32) - mean) / std


def channel_stats(x: np.ndarray, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """Per-channel mean and std of NHWC images, accumulated in float64 chunk by chunk."""
  channels = x.shape[-1]
  total = np.zeros(channels)
  total_sq = np.zeros(channels)
  for start in range(0, x.shape[0], chunk):
    part = np.asarray(x[start:start + chunk], np.float64).reshape(-1, channels)
    total += part.sum(axis=0)
    total_sq += np.square(part).sum(axis=0)
  count = max(x.shape[0] * x.shape[1] * x.shape[2], 1)
  mean = total / count
  std = np.sqrt(np.maximum(total_sq / count - np.square(mean), 0.0))
  std = np.where(std > 0, std, 1.0)
  return tuple(float(m) for m in mean), tuple(float(s) for s in std)
