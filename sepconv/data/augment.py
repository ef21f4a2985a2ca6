"""Training-time augmentation that runs on device, seeded, inside the jitted step."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Augmentation:
  """Random translation (pad then crop back) and horizontal flip.

  Attributes:
    pad: pixels of zero padding on each side before a random crop to the original
      size; 4 is the standard CIFAR recipe (He et al. 2016), 0 turns cropping off.
    flip: flip each image left-right with probability 1/2 (wrong for digits).
  """

  pad: int = 0
  flip: bool = False

  def __post_init__(self):
    if self.pad < 0:
      raise ValueError(f"augmentation pad (={self.pad}) must be >= 0")

  @property
  def enabled(self) -> bool:
    return self.pad > 0 or self.flip

  def __call__(self, key: jax.Array, x: jax.Array) -> jax.Array:
    """Augments a normalised NHWC batch; padding is zero, i.e. the mean colour."""
    return augment(key, x, pad=self.pad, flip=self.flip)


def augment(key: jax.Array, x: jax.Array, *, pad: int, flip: bool) -> jax.Array:
  """Random crop with ``pad`` and optional horizontal flip, one draw per image."""
  if not (pad or flip):
    return x
  n, h, w, _ = x.shape
  crop_key, flip_key = jax.random.split(key)
  if pad:
    padded = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    offsets = jax.random.randint(crop_key, (n, 2), 0, 2 * pad + 1)

    def crop(image, offset):
      return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, image.shape[-1]))

    x = jax.vmap(crop)(padded, offsets)
  if flip:
    flips = jax.random.bernoulli(flip_key, 0.5, (n, 1, 1, 1))
    x = jnp.where(flips, x[:, :, ::-1, :], x)
  return x
