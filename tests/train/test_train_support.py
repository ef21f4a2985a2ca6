"""A tiny Flax CNN obeying the ``sepconv.models.build_model`` protocol, for training tests."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp


class TinyCNN(nn.Module):
  """Dense 3x3 stem, one depthwise-separable block (BN + ReLU after each), pool, dense."""

  num_classes: int
  features: int = 16
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    def bn_relu(y, name):
      return nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype,
                                  name=name)(y))

    x = x.astype(self.dtype)
    x = bn_relu(nn.Conv(self.features, (3, 3), use_bias=False, dtype=self.dtype,
                        name="stem")(x), "BatchNorm_0")
    x = bn_relu(nn.Conv(self.features, (3, 3), feature_group_count=self.features, use_bias=False,
                        dtype=self.dtype, name="depthwise")(x), "BatchNorm_1")
    x = bn_relu(nn.Conv(2 * self.features, (1, 1), use_bias=False, dtype=self.dtype,
                        name="pointwise")(x), "BatchNorm_2")
    features = {"pool": jnp.mean(x, axis=(1, 2))}
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="classifier")(features["pool"])
    return logits, features


def tiny_factory(config, num_classes, input_shape):
  """``model_factory`` for ``sepconv.train.train``."""
  del input_shape
  dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[config.dtype]
  return TinyCNN(num_classes=num_classes, dtype=dtype)
