"""One Flax network that runs any ``Architecture``: the models hold data, this holds parameters."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from sepconv.conv.geometry import ConvGeometry, make_geometry
from sepconv.layers import SpectrumConv
from sepconv.models.arch import Architecture, ConvUnit, InvertedResidual, layer_specs

# Activation names of the architecture data (``arch.ACTIVATIONS``) as functions.
ACTIVATION_FNS = {"relu": nn.relu, "relu6": jax.nn.relu6, "linear": lambda x: x}


class _InvertedResidual(nn.Module):
  """Expansion ("expand"), the knob's layer ("conv", linear output), optional shortcut."""
  unit: InvertedResidual
  impl: str
  dtype: Any
  norm_momentum: float
  norm_epsilon: float

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    unit, act = self.unit, ACTIVATION_FNS[self.unit.activation]
    layer = lambda spec, name: SpectrumConv(  # noqa: E731
        spec, norm=True, impl=self.impl, activation=act, norm_momentum=self.norm_momentum,
        norm_epsilon=self.norm_epsilon, dtype=self.dtype, name=name)
    y = x
    if unit.expand is not None:
      y = act(layer(unit.expand, "expand")(y, train))
    y = layer(unit.conv, "conv")(y, train)
    return x + y if unit.residual else y


class SpectrumNet(nn.Module):
  """A classifier built from an ``Architecture`` (see ``sepconv.models.build_model``).

  ``__call__(x, *, train)`` takes NHWC images with any number of channels (the dense stem
  conv takes what it is given; ``arch.in_channels`` is only the default the cost walk uses)
  and returns ``(logits, features)``:
  float32 logits and a dict of named features: each unit's output ("stem", "block1",
  ..., "head" for MobileNet v2) and the globally pooled "penultimate" features that feed
  the classifier. BatchNorm statistics live in the 'batch_stats' collection; dropout (if
  ``dropout_rate > 0``) draws from the 'dropout' rng.

  Attributes:
    arch: the architecture (units, classes).
    input_size: the input side the model was built for (informational; any size runs).
    impl: convolution implementation for every conv (``sepconv.conv.IMPLS``).
    dtype: computation dtype; parameters stay float32.
    dropout_rate: dropout before the classifier.
    norm_momentum, norm_epsilon: BatchNorm settings (0.9 suits the short runs here;
      Keras uses 0.99 and 0.999, epsilon 1e-3).
  """
  arch: Architecture
  input_size: int | None = None
  impl: str = "auto"
  dtype: Any = jnp.float32
  dropout_rate: float = 0.0
  norm_momentum: float = 0.9
  norm_epsilon: float = 1e-3

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> tuple[jax.Array, dict[str, jax.Array]]:
    if x.ndim != 4:
      raise ValueError(f"input shape (={x.shape}) must be NHWC")
    arch = self.arch.with_in_channels(x.shape[-1])
    x = jnp.asarray(x, self.dtype)
    features = {}
    for unit in arch.units:
      if isinstance(unit, ConvUnit):
        x = SpectrumConv(unit.spec, norm=True, impl=self.impl,
                         activation=ACTIVATION_FNS[unit.inner_activation],
                         norm_momentum=self.norm_momentum, norm_epsilon=self.norm_epsilon,
                         dtype=self.dtype, name=unit.name)(x, train)
        x = ACTIVATION_FNS[unit.activation](x)
      else:
        x = _InvertedResidual(unit, self.impl, self.dtype, self.norm_momentum, self.norm_epsilon,
                              name=unit.name)(x, train)
      features[unit.name] = x
    pooled = jnp.mean(x, axis=(1, 2))
    features["penultimate"] = pooled
    if self.dropout_rate:
      pooled = nn.Dropout(self.dropout_rate, deterministic=not train)(pooled)
    logits = nn.Dense(arch.num_classes, dtype=self.dtype, name="classifier")(pooled)
    return jnp.asarray(logits, jnp.float32), features


def conv_geometries(arch: Architecture, image_shape: tuple[int, int, int], batch: int,
                    dtype: Any = jnp.float32) -> list[ConvGeometry]:
  """Every convolution ``SpectrumNet(arch)`` runs on a batch of ``image_shape`` images.

  Walks the same layers as the cost model, so the geometries, and with them the plans
  ``impl='auto'`` chose, can be recorded (and replayed) without tracing the model.
  """
  h, w, channels = image_shape
  arch = arch.with_in_channels(channels)
  dtype = jnp.dtype(dtype)
  out = []
  for _, spec in layer_specs(arch):
    for stage in spec.stages():
      kernel_shape = stage.kernel_shape
      geom = make_geometry((batch, h, w, stage.in_channels), kernel_shape, dtype,
                           feature_group_count=stage.feature_group_count, strides=stage.stride,
                           padding=stage.padding, dilation=stage.dilation)
      out.append(geom)
      h, w = geom.out_hw
  return out
