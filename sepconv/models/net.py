"""One network that runs any ``Architecture``, defined once; this module's Linen shell runs it.

``run_unit`` and ``run_network`` are the forward pass, written once: which layers a unit
holds (``arch.unit_layers``), how its activations and shortcut combine, pooling,
features and logits. The Linen ``SpectrumNet`` below and the NNX one
(``sepconv.nnx.net``) only create the layers under the names ``unit_layers`` gives and
pass them in, so their parameter trees and outputs are one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from sepconv.conv.geometry import ConvGeometry, make_geometry
from sepconv.layers import SpectrumConv
from sepconv.models.arch import Architecture, Unit, UnitLayer, layer_specs, unit_layers

# Activation names of the architecture data (``arch.ACTIVATIONS``) as functions.
ACTIVATION_FNS = {"relu": jax.nn.relu, "relu6": jax.nn.relu6, "linear": lambda x: x}

Layer = Callable[[UnitLayer, jax.Array], jax.Array]


def run_unit(unit: Unit, x: jax.Array, layer: Layer) -> jax.Array:
  """One unit: its layers (``layer`` runs each), activations, and shortcut.

  A ``ConvUnit`` is its layer then its activation; an ``InvertedResidual`` is the
  expansion and its activation, the knob's layer with a linear output, and the shortcut.
  """
  act = ACTIVATION_FNS[unit.activation]
  *expand, conv = unit_layers(unit)
  if conv.role is None:
    return act(layer(conv, x))
  y = x
  for first in expand:
    y = act(layer(first, y))
  y = layer(conv, y)
  return x + y if unit.residual else y


def check_images(x: jax.Array) -> None:
  if x.ndim != 4:
    raise ValueError(f"input shape (={x.shape}) must be NHWC")


def run_network(arch: Architecture, x: jax.Array, *, unit: Callable[[Unit, jax.Array], jax.Array],
                head: Callable[[jax.Array], jax.Array], dtype: Any
                ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The forward pass: units in order, global average pool, ``head`` (dropout, classifier).

  Returns float32 logits and the named features: each unit's output and "penultimate".
  """
  x = jnp.asarray(x, dtype)
  features = {}
  for u in arch.units:
    x = unit(u, x)
    features[u.name] = x
  pooled = jnp.mean(x, axis=(1, 2))
  features["penultimate"] = pooled
  return jnp.asarray(head(pooled), jnp.float32), features


def _layer(layer: UnitLayer, name: str, impl: str, dtype: Any, norm_momentum: float,
           norm_epsilon: float) -> SpectrumConv:
  return SpectrumConv(layer.spec, norm=True, impl=impl, activation=ACTIVATION_FNS[layer.activation],
                      norm_momentum=norm_momentum, norm_epsilon=norm_epsilon, dtype=dtype, name=name)


class _Unit(nn.Module):
  """A unit whose layers have names of their own (MobileNet v2's "expand" and "conv")."""
  unit: Unit
  impl: str
  dtype: Any
  norm_momentum: float
  norm_epsilon: float

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    return run_unit(self.unit, x, lambda layer, y: _layer(
        layer, layer.role, self.impl, self.dtype, self.norm_momentum, self.norm_epsilon)(y, train))


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
    check_images(x)
    arch = self.arch.with_in_channels(x.shape[-1])
    options = (self.impl, self.dtype, self.norm_momentum, self.norm_epsilon)

    def unit(u: Unit, y: jax.Array) -> jax.Array:
      if unit_layers(u)[-1].role is None:  # the unit is its one layer, named as the unit
        return run_unit(u, y, lambda layer, z: _layer(layer, u.name, *options)(z, train))
      return _Unit(u, *options, name=u.name)(y, train)

    def head(pooled: jax.Array) -> jax.Array:
      if self.dropout_rate:
        pooled = nn.Dropout(self.dropout_rate, deterministic=not train)(pooled)
      return nn.Dense(arch.num_classes, dtype=self.dtype, name="classifier")(pooled)

    return run_network(arch, x, unit=unit, head=head, dtype=self.dtype)


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
